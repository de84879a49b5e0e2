//! One kernel program (or a tight family) per file.

mod exit;
mod faults;
mod major_faults;
