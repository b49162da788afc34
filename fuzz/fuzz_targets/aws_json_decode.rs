//! Arbitrary bytes through the HTTP endpoint's request decoding (`protocol::aws_json`): the
//! target name and the JSON body. See `aws_json_check.rs` for what is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod aws_json_check;

fuzz_target!(|data: &[u8]| aws_json_check::check(data));
