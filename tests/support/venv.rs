//! A virtualenv with the pinned framework packages (`tests/requirements.txt`)
//! made once per test run under `target/test-venv`, so the Flask and Django
//! suites run on a clean machine with nothing installed by hand.
