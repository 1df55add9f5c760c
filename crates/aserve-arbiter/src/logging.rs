//! The error log: gunicorn's line format
//! (`[2026-01-01T00:00:00.000000Z] [PID] [LEVEL] message`) or one JSON
//! object per line, to stderr, stdout or a file that SIGUSR1 reopens.

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use aserve_config::{Config, LogFormat, LogLevel, LogTarget};
use aserve_http::statsd::{Statsd, StatsdOptions};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The error log file could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the error log {path}: {source}")]
pub struct LogError {
    path: String,
    source: std::io::Error,
}

/// Installs the error log. Call once, before anything logs. With
/// `statsd`, warnings and errors are also counted there
/// (`gunicorn.log.*`), by a direct sender every process shares across
/// `fork`.
pub fn init(config: &Config, statsd: Option<&StatsdOptions>) -> Result<(), LogError> {
    let max = match config.log_level {
        LogLevel::Debug => Level::DEBUG,
        LogLevel::Info => Level::INFO,
        LogLevel::Warning => Level::WARN,
        LogLevel::Error | LogLevel::Critical => Level::ERROR,
    };
    let sink = Sink::open(&config.error_logfile)?;
    let sink = SINK.get_or_init(|| Arc::new(Mutex::new(sink))).clone();
    let writer = SinkWriter(sink);
    let builder = tracing_subscriber::fmt()
        .with_max_level(max)
        .with_writer(writer);
    // A socket that cannot be opened costs the log counters, never the start.
    let counts = statsd.and_then(|options| match Statsd::direct(options) {
        Ok(statsd) => Some(crate::statsd::LogCounts(statsd)),
        Err(e) => {
            eprintln!("aserve: statsd: cannot open a socket for the log counters: {e}");
            None
        }
    });
    match config.log_format {
        LogFormat::Text => builder
            .event_format(LineFormat)
            .finish()
            .with(counts)
            .init(),
        LogFormat::Json => builder
            .event_format(JsonFormat)
            .finish()
            .with(counts)
            .init(),
    }
    Ok(())
}

/// Reopens the error log file (SIGUSR1), for log rotation. stderr and
/// stdout belong to whoever started aserve; there is nothing to reopen.
pub fn reopen() {
    let Some(sink) = SINK.get() else { return };
    let mut sink = sink.lock().unwrap_or_else(PoisonError::into_inner);
    if let Sink::File(path, file) = &mut *sink {
        match open_append(path) {
            Ok(reopened) => *file = reopened,
            Err(e) => eprintln!(
                "aserve: cannot reopen the error log {}: {e}",
                path.display()
            ),
        }
    }
}

static SINK: OnceLock<Arc<Mutex<Sink>>> = OnceLock::new();

enum Sink {
    Stderr,
    Stdout,
    File(PathBuf, File),
}

impl Sink {
    fn open(target: &LogTarget) -> Result<Self, LogError> {
        Ok(match target {
            LogTarget::Stderr => Self::Stderr,
            LogTarget::Stdout => Self::Stdout,
            LogTarget::File(path) => {
                let file = open_append(path).map_err(|source| LogError {
                    path: path.display().to_string(),
                    source,
                })?;
                Self::File(path.clone(), file)
            }
        })
    }
}

fn open_append(path: &std::path::Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// Writes whole events: the formatter renders one event into a buffer and
/// hands it over in one `write`, so lines from threads never interleave.
#[derive(Clone)]
struct SinkWriter(Arc<Mutex<Sink>>);

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut sink = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *sink {
            Sink::Stderr => std::io::stderr().write_all(buf)?,
            Sink::Stdout => std::io::stdout().write_all(buf)?,
            Sink::File(_, file) => file.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for SinkWriter {
    type Writer = SinkWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// Workers inherit the subscriber across fork, so the pid is read per event.
struct LineFormat;

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_char('[')?;
        SystemTime.format_time(&mut writer)?;
        write!(
            writer,
            "] [{}] [{}] ",
            std::process::id(),
            level_name(event.metadata().level())
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// `{"time": ..., "pid": ..., "level": ..., "message": ..., <fields>}`.
struct JsonFormat;

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut time = String::new();
        SystemTime.format_time(&mut Writer::new(&mut time))?;
        let mut fields = JsonFields(serde_json::Map::new());
        fields.0.insert("time".into(), time.into());
        fields.0.insert("pid".into(), std::process::id().into());
        fields
            .0
            .insert("level".into(), level_name(event.metadata().level()).into());
        event.record(&mut fields);
        writeln!(writer, "{}", serde_json::Value::Object(fields.0))
    }
}

struct JsonFields(serde_json::Map<String, serde_json::Value>);

impl Visit for JsonFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}
