//! Arbitrary bytes as one client's whole connection: request heads,
//! bodies, pipelined requests. See `aserve_http::fuzzing` for what is
//! checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    aserve_http::fuzzing::one_connection(data);
});
