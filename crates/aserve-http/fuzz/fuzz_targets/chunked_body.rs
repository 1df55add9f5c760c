//! Arbitrary bytes as the body of a chunked POST, followed by a pipelined
//! GET. See `aserve_http::fuzzing` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    aserve_http::fuzzing::chunked_body(data);
});
