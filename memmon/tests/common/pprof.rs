//! profile.proto (github.com/google/pprof), the messages and fields the
//! tests read, declared here independently of memmon's writer; and the
//! decoding of a body that may be gzipped (as /api/v1/profile sends it).

use prost::Message as _;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "12")]
    pub period: i64,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
}

/// Decodes pprof `bytes`, gunzipping them first when they start with the
/// gzip magic.
pub fn decode(bytes: &[u8]) -> Profile {
    use std::io::Read as _;
    let mut plain = Vec::new();
    let raw: &[u8] = if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut plain)
            .expect("gunzip the profile");
        &plain
    } else {
        bytes
    };
    Profile::decode(raw).expect("decodes as profile.proto Profile")
}

impl Profile {
    /// String `i` of the table.
    pub fn s(&self, i: i64) -> &str {
        self.string_table
            .get(usize::try_from(i).expect("string index >= 0"))
            .map(String::as_str)
            .unwrap_or_else(|| panic!("string index {i} outside the table"))
    }

    /// The function names of sample `sample`'s locations, innermost first.
    pub fn names(&self, sample: &Sample) -> Vec<&str> {
        sample
            .location_id
            .iter()
            .flat_map(|id| {
                self.location
                    .iter()
                    .find(|l| l.id == *id)
                    .unwrap_or_else(|| panic!("location id {id} missing"))
                    .line
                    .iter()
                    .map(|l| {
                        self.function
                            .iter()
                            .find(|f| f.id == l.function_id)
                            .map(|f| self.s(f.name))
                            .unwrap_or_else(|| panic!("function id {} missing", l.function_id))
                    })
            })
            .collect()
    }
}
