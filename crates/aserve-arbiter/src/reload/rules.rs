//! The watcher's two decisions, kept free of I/O so they can be tested
//! alone: which changed paths matter ([`Filter`]), and when a burst of
//! changes is over ([`Debounce`]).
//!
//! Paths here are as the watcher registered them (canonical directories,
//! with the changed entry's name joined on), so a plain comparison is
//! enough: no path is resolved or read from the disk.

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Which changed paths restart the workers.
///
/// - A file named by `--reload-extra-file` always counts.
/// - A file under a directory named by `--reload-extra-file` counts unless
///   it is hidden (`.name`: editor swap and lock files), a backup
///   (`name~`), or matches a `--reload-ignore` glob.
/// - Otherwise only a `.py` file directly in one of the app's source
///   directories counts, unless hidden or ignored. A source directory
///   holds a module the app imported (or is one of its import roots), so
///   a new module next to the old ones, or one an editor saved by
///   renaming a temporary file over it, is seen like an edited one.
#[derive(Debug)]
pub(crate) struct Filter {
    source_dirs: HashSet<PathBuf>,
    extra_files: HashSet<PathBuf>,
    extra_dirs: Vec<PathBuf>,
    ignore: GlobSet,
    /// Where the globs' relative paths start: the app's directory.
    base: PathBuf,
}

impl Filter {
    /// `ignore`: `--reload-ignore` globs (already checked by the
    /// configuration). `*` and `?` never match `/`; `**` does.
    pub(crate) fn new(base: PathBuf, ignore: &[String]) -> Result<Self, globset::Error> {
        let mut set = GlobSetBuilder::new();
        for glob in ignore {
            set.add(GlobBuilder::new(glob).literal_separator(true).build()?);
        }
        Ok(Self {
            source_dirs: HashSet::new(),
            extra_files: HashSet::new(),
            extra_dirs: Vec::new(),
            ignore: set.build()?,
            base,
        })
    }

    /// Adds a directory of the app's Python files; false if it was known.
    pub(crate) fn add_source_dir(&mut self, dir: PathBuf) -> bool {
        self.source_dirs.insert(dir)
    }

    pub(crate) fn add_extra_file(&mut self, file: PathBuf) {
        self.extra_files.insert(file);
    }

    pub(crate) fn add_extra_dir(&mut self, dir: PathBuf) {
        self.extra_dirs.push(dir);
    }

    /// Whether a change to `path` restarts the workers.
    pub(crate) fn is_change(&self, path: &Path) -> bool {
        if self.extra_files.contains(path) {
            return true;
        }
        let Some(name) = path.file_name().and_then(OsStr::to_str) else {
            return false;
        };
        if name.starts_with('.') || name.ends_with('~') || self.ignored(path, name) {
            return false;
        }
        if self.extra_dirs.iter().any(|dir| path.starts_with(dir)) {
            return true;
        }
        name.ends_with(".py") && path.parent().is_some_and(|d| self.source_dirs.contains(d))
    }

    /// A glob matches the file's name, its path relative to the app's
    /// directory, or its absolute path.
    fn ignored(&self, path: &Path, name: &str) -> bool {
        self.ignore.is_match(name)
            || path
                .strip_prefix(&self.base)
                .is_ok_and(|relative| self.ignore.is_match(relative))
            || self.ignore.is_match(path)
    }
}

/// Coalesces the events of one save (an editor writes, renames and
/// deletes several files for one) or one checkout into one restart: a
/// burst ends after [`Debounce::QUIET`] without a relevant event, or at
/// the latest [`Debounce::LONGEST`] after it began, so a process that
/// writes without pause still restarts the workers.
#[derive(Debug, Default)]
pub(crate) struct Debounce {
    /// When the current burst began and when its last event came.
    burst: Option<(Instant, Instant)>,
    paths: BTreeSet<PathBuf>,
}

impl Debounce {
    pub(crate) const QUIET: Duration = Duration::from_millis(150);
    pub(crate) const LONGEST: Duration = Duration::from_millis(500);

    pub(crate) fn add(&mut self, path: PathBuf, now: Instant) {
        let first = self.burst.map_or(now, |(first, _)| first);
        self.burst = Some((first, now));
        self.paths.insert(path);
    }

    /// When the current burst will be over, if one is under way.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.burst
            .map(|(first, last)| (last + Self::QUIET).min(first + Self::LONGEST))
    }

    /// The burst's changed paths, sorted, once it is over at `now`.
    pub(crate) fn take_due(&mut self, now: Instant) -> Option<Vec<PathBuf>> {
        if self.deadline()? > now {
            return None;
        }
        self.burst = None;
        Some(std::mem::take(&mut self.paths).into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(ignore: &[&str]) -> Filter {
        let ignore: Vec<String> = ignore.iter().map(ToString::to_string).collect();
        let mut filter = Filter::new(PathBuf::from("/srv"), &ignore).expect("globs");
        filter.add_source_dir(PathBuf::from("/srv/app"));
        filter.add_source_dir(PathBuf::from("/srv/app/views"));
        filter.add_extra_file(PathBuf::from("/etc/app/settings.toml"));
        filter.add_extra_dir(PathBuf::from("/srv/templates"));
        filter
    }

    fn changes(filter: &Filter, paths: &[&str]) -> Vec<bool> {
        paths
            .iter()
            .map(|p| filter.is_change(Path::new(p)))
            .collect()
    }

    #[test]
    fn python_files_of_source_directories_count() {
        let f = filter(&[]);
        assert_eq!(
            changes(
                &f,
                &[
                    "/srv/app/models.py",
                    "/srv/app/views/new_module.py",
                    "/srv/app/sub/unknown.py",
                    "/srv/app/notes.txt",
                    "/srv/app/__pycache__/models.cpython-312.pyc",
                    "/usr/lib/python3.12/os.py",
                ]
            ),
            [true, true, false, false, false, false]
        );
    }

    #[test]
    fn editor_temporaries_do_not_count() {
        let f = filter(&[]);
        assert_eq!(
            changes(
                &f,
                &[
                    "/srv/app/.models.py.swp",
                    "/srv/app/.#models.py",
                    "/srv/app/models.py~",
                    "/srv/templates/.index.html.swp",
                    "/srv/templates/index.html~",
                ]
            ),
            [false; 5]
        );
    }

    #[test]
    fn extra_files_and_directories_count() {
        let f = filter(&["*.html"]);
        assert_eq!(
            changes(
                &f,
                &[
                    "/etc/app/settings.toml",
                    "/etc/app/other.toml",
                    "/etc/app/helper.py",
                    "/srv/templates/base.txt",
                    "/srv/templates/deep/er/page.txt",
                    // Ignored: only named files are beyond --reload-ignore.
                    "/srv/templates/index.html",
                ]
            ),
            [true, false, false, true, true, false]
        );
    }

    #[test]
    fn ignore_globs_match_names_and_relative_paths() {
        let f = filter(&["*_test.py", "app/views/*", "/srv/app/local_settings.py"]);
        assert_eq!(
            changes(
                &f,
                &[
                    "/srv/app/models_test.py",
                    "/srv/app/views/home.py",
                    "/srv/app/local_settings.py",
                    "/srv/app/models.py",
                ]
            ),
            [false, false, false, true]
        );
        // `*` stays within one directory; `**` crosses them.
        let f = filter(&["app/*.py"]);
        assert_eq!(
            changes(&f, &["/srv/app/views/home.py", "/srv/app/models.py"]),
            [true, false]
        );
        let f = filter(&["**/views/**"]);
        assert_eq!(changes(&f, &["/srv/app/views/home.py"]), [false]);
    }

    #[test]
    fn a_burst_ends_after_a_quiet_spell() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut d = Debounce::default();
        assert_eq!(d.deadline(), None);
        assert_eq!(d.take_due(at(0)), None);
        d.add(PathBuf::from("/a.py"), at(0));
        d.add(PathBuf::from("/b.py"), at(100));
        d.add(PathBuf::from("/a.py"), at(120));
        assert_eq!(d.deadline(), Some(at(270)));
        assert_eq!(d.take_due(at(269)), None);
        assert_eq!(
            d.take_due(at(270)),
            Some(vec![PathBuf::from("/a.py"), PathBuf::from("/b.py")])
        );
        assert_eq!(d.deadline(), None);
        assert_eq!(d.take_due(at(1000)), None);
    }

    #[test]
    fn a_burst_that_never_pauses_still_ends() {
        let start = Instant::now();
        let mut d = Debounce::default();
        for ms in (0..=480).step_by(40) {
            d.add(PathBuf::from("/a.py"), start + Duration::from_millis(ms));
        }
        assert_eq!(d.deadline(), Some(start + Debounce::LONGEST));
        assert!(d.take_due(start + Debounce::LONGEST).is_some());
        // The next event starts a new burst.
        d.add(PathBuf::from("/a.py"), start + Duration::from_millis(600));
        assert_eq!(d.deadline(), Some(start + Duration::from_millis(750)));
    }
}
