//! A profile as pprof protobuf (profile.proto of github.com/google/pprof,
//! what `go tool pprof`, Pyroscope, Parca and Grafana read): the messages
//! are declared here with prost (field numbers from the proto), written
//! uncompressed (every pprof reader also takes gzip-less input).

use std::collections::HashMap;

use prost::Message as _;

use crate::{model::profile::Profile, sample::stacks::StackEvent};

/// profile.proto `Profile`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PprofProfile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

/// profile.proto `ValueType`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// profile.proto `Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

/// profile.proto `Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
    #[prost(int64, tag = "3")]
    pub num: i64,
}

/// profile.proto `Mapping`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Mapping {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "5")]
    pub filename: i64,
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
}

/// profile.proto `Location`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

/// profile.proto `Line`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

/// profile.proto `Function`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
}

/// The string table under construction (index 0 is "").
#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn id(&mut self, s: &str) -> i64 {
        if self.table.is_empty() {
            self.table.push(String::new());
            self.index.insert(String::new(), 0);
        }
        if let Some(i) = self.index.get(s) {
            return *i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

/// The sample types of an event: (count type, weight type, weight unit).
fn sample_types(event: StackEvent) -> (&'static str, &'static str, &'static str) {
    match event {
        StackEvent::Faults => ("samples", "page_faults", "count"),
        StackEvent::Brk => ("samples", "brk_space", "bytes"),
        StackEvent::Mmap => ("samples", "mapped_space", "bytes"),
        StackEvent::Leaks => ("inuse_objects", "inuse_space", "bytes"),
        StackEvent::Resident => ("samples", "resident_space", "bytes"),
    }
}

/// The profile as a pprof message. `time_nanos`: when sampling started
/// (Unix epoch).
pub fn build(profile: &Profile, time_nanos: i64) -> PprofProfile {
    let mut strings = Strings::default();
    strings.id("");
    let (count_type, weight_type, unit) = sample_types(profile.event);
    // brk and mmap weigh every call: no sample count, so no count type.
    let counted = matches!(
        profile.event,
        StackEvent::Faults | StackEvent::Leaks | StackEvent::Resident
    );
    // An index into the string table: the weight is the preferred value.
    let default_sample_type = strings.id(weight_type);
    let mut sample_type = vec![ValueType {
        r#type: strings.id(weight_type),
        unit: strings.id(unit),
    }];
    if counted {
        sample_type.insert(
            0,
            ValueType {
                r#type: strings.id(count_type),
                unit: strings.id("count"),
            },
        );
    }
    let mut mappings: HashMap<String, u64> = HashMap::new();
    let mut mapping = Vec::new();
    let mut functions: HashMap<(String, Option<String>), u64> = HashMap::new();
    let mut function = Vec::new();
    let mut locations: HashMap<(String, Option<String>), u64> = HashMap::new();
    let mut location = Vec::new();
    let pid_key = strings.id("pid");
    let mut samples = Vec::new();
    for s in profile.stacks.iter().filter(|s| s.weight > 0) {
        let mut ids = Vec::with_capacity(s.frames.len());
        for f in &s.frames {
            let module = if f.kernel {
                Some("[kernel.kallsyms]".to_string())
            } else {
                f.module.clone()
            };
            let key = (f.name.clone(), module.clone());
            if let Some(id) = locations.get(&key) {
                ids.push(*id);
                continue;
            }
            let mapping_id = match &module {
                Some(m) => match mappings.get(m) {
                    Some(id) => *id,
                    None => {
                        let id = mapping.len() as u64 + 1;
                        mapping.push(Mapping {
                            id,
                            filename: strings.id(m),
                            has_functions: true,
                        });
                        mappings.insert(m.clone(), id);
                        id
                    }
                },
                None => 0,
            };
            let function_id = match functions.get(&key) {
                Some(id) => *id,
                None => {
                    let id = function.len() as u64 + 1;
                    let name = strings.id(&f.name);
                    function.push(Function {
                        id,
                        name,
                        system_name: name,
                        filename: module.as_deref().map(|m| strings.id(m)).unwrap_or(0),
                    });
                    functions.insert(key.clone(), id);
                    id
                }
            };
            let id = location.len() as u64 + 1;
            location.push(Location {
                id,
                mapping_id,
                line: vec![Line {
                    function_id,
                    line: 0,
                }],
            });
            locations.insert(key, id);
            ids.push(id);
        }
        samples.push(Sample {
            location_id: ids,
            value: if counted {
                vec![i64::try_from(s.count).unwrap_or(i64::MAX), s.weight]
            } else {
                vec![s.weight]
            },
            label: vec![Label {
                key: pid_key,
                str: 0,
                num: i64::from(s.tgid),
            }],
        });
    }
    // The period counts what one sample stands for: page faults for the
    // fault-based profiles, allocations for --exact, bytes (every call)
    // for brk and mmap.
    let period_type = Some(match profile.event {
        StackEvent::Faults | StackEvent::Resident => ValueType {
            r#type: strings.id("page_faults"),
            unit: strings.id("count"),
        },
        StackEvent::Leaks => ValueType {
            r#type: strings.id("allocations"),
            unit: strings.id("count"),
        },
        StackEvent::Brk | StackEvent::Mmap => ValueType {
            r#type: strings.id(weight_type),
            unit: strings.id(unit),
        },
    });
    let (source, meaning) = crate::sinks::profile::describe(profile);
    let comment = vec![
        strings.id(&format!(
            "memmon {} (period {})",
            profile.event.name(),
            crate::sinks::profile::period_text(profile)
        )),
        strings.id(&source),
        strings.id(&meaning),
    ];
    PprofProfile {
        sample_type,
        sample: samples,
        mapping,
        location,
        function,
        string_table: strings.table,
        time_nanos,
        duration_nanos: (profile.duration_secs * 1e9) as i64,
        period_type,
        period: i64::try_from(profile.period).unwrap_or(i64::MAX),
        comment,
        default_sample_type,
    }
}

/// The encoded bytes.
pub fn encode(profile: &Profile, time_nanos: i64) -> Vec<u8> {
    build(profile, time_nanos).encode_to_vec()
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use crate::sample::stacks::{Frame, NamedSample};

    #[test]
    fn locations_and_functions_are_shared_and_strings_start_empty() {
        let f = |name: &str| Frame {
            name: name.into(),
            module: Some("/bin/w".into()),
            kernel: false,
            symbolized: true,
        };
        let s = |frames: Vec<Frame>, weight| NamedSample {
            event: StackEvent::Leaks,
            tgid: 3,
            frames,
            weight,
            count: 1,
            growth: 0,
        };
        let p = Profile::build(
            StackEvent::Leaks,
            1,
            2.0,
            &[
                s(vec![f("a"), f("main")], 10),
                s(vec![f("b"), f("main")], 5),
            ],
        );
        let pb = PprofProfile::decode(encode(&p, 0).as_slice()).expect("round trip");
        assert_eq!(pb.string_table[0], "");
        assert_eq!(pb.sample.len(), 2);
        assert_eq!(pb.location.len(), 3, "main is one location");
        assert_eq!(pb.function.len(), 3);
        assert_eq!(pb.mapping.len(), 1);
        assert_eq!(pb.sample[0].value, vec![1, 10]);
        assert_eq!(
            pb.string_table[pb.default_sample_type as usize],
            "inuse_space"
        );
        assert_eq!(pb.duration_nanos, 2_000_000_000);
    }
}
