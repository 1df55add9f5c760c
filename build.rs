//! Embeds the path of the libpython we link against as the binary's rpath,
//! so `aserve` always loads the interpreter it was built for rather than
//! whichever libpython the system loader finds first.

fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
}
