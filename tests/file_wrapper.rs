//! wsgi.file_wrapper: real files (whole, and from a seek offset) and a
//! non-file object, against `tests/apps/file_app.py`.

use std::path::PathBuf;

use crate::support::Server;
use crate::support::http::{fetch, get};

/// A file under Cargo's per-target temp dir, removed on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes a file of `len` patterned bytes.
fn temp_file(name: &str, len: usize) -> (TempFile, Vec<u8>) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("file-wrapper-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
    let path = dir.join(name);
    std::fs::write(&path, &data).expect("write temp file");
    (TempFile(path), data)
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

#[test]
fn file_wrapper_serves_a_large_files_exact_bytes() {
    let (file, data) = temp_file("large.bin", 3 * 1024 * 1024 / 2 + 12345);
    let server = Server::start("file_app:app");
    let resp = fetch(&server, &get(&format!("/file?{}", file.0.display())));
    assert_eq!(
        resp.status,
        200,
        "{}",
        String::from_utf8_lossy(&resp.body[..resp.body.len().min(500)])
    );
    assert!(resp.complete, "truncated after {} bytes", resp.body.len());
    assert_eq!(
        first_difference(&resp.body, &data),
        None,
        "got {} of {} bytes",
        resp.body.len(),
        data.len()
    );
}

#[test]
fn file_wrapper_serves_from_the_files_current_offset() {
    let (file, data) = temp_file("offset.bin", 1024 * 1024 + 999);
    let server = Server::start("file_app:app");
    let offset = 300_001;
    let resp = fetch(
        &server,
        &get(&format!("/file_offset?{offset}:{}", file.0.display())),
    );
    assert_eq!(
        resp.status,
        200,
        "{}",
        String::from_utf8_lossy(&resp.body[..resp.body.len().min(500)])
    );
    assert!(resp.complete, "truncated after {} bytes", resp.body.len());
    if let Some(len) = resp.header("content-length") {
        assert_eq!(
            len,
            (data.len() - offset).to_string(),
            "Content-Length must count from the offset"
        );
    }
    assert_eq!(
        first_difference(&resp.body, &data[offset..]),
        None,
        "got {} bytes, expected {}",
        resp.body.len(),
        data.len() - offset
    );
}

#[test]
fn file_wrapper_around_non_file_is_iterated() {
    let server = Server::start("file_app:app");
    let resp = fetch(&server, &get("/bytesio"));
    assert_eq!(resp.status, 200, "{}", resp.dump());
    assert!(resp.complete, "{}", resp.dump());
    let expected: String = (0..2000)
        .map(|i| format!("line {i:05} of an in-memory body\n"))
        .collect();
    assert_eq!(resp.body.len(), expected.len());
    assert!(resp.text() == expected, "BytesIO body differs");
}
