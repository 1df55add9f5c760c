//! Arbitrary bytes as the start of a connection that must begin with a
//! PROXY protocol header. See `aserve_http::fuzzing::proxy_header` for
//! what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    aserve_http::fuzzing::proxy_header(data);
});
