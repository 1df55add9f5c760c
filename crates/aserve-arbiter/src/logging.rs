//! The error log: gunicorn's line format on stderr,
//! `[2026-01-01T00:00:00.000000Z] [PID] [LEVEL] message`.

use std::fmt;

use aserve_config::LogLevel;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the error log. Call once, before anything logs.
pub fn init(level: LogLevel) {
    let max = match level {
        LogLevel::Debug => Level::DEBUG,
        LogLevel::Info => Level::INFO,
        LogLevel::Warning => Level::WARN,
        LogLevel::Error | LogLevel::Critical => Level::ERROR,
    };
    tracing_subscriber::fmt()
        .with_max_level(max)
        .with_writer(std::io::stderr)
        .event_format(LineFormat)
        .init();
}

/// Workers inherit the subscriber across fork, so the pid is read per event.
struct LineFormat;

/// Reopens log files (SIGUSR1), for log rotation. The error log goes to
/// stderr, which the process manager (systemd, Kubernetes) owns; there is
/// nothing to reopen until a log file is configured.
pub fn reopen() {
    tracing::info!("Reopening log files");
}

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
        let level = match *event.metadata().level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            Level::DEBUG => "DEBUG",
            Level::TRACE => "TRACE",
        };
        writer.write_char('[')?;
        SystemTime.format_time(&mut writer)?;
        write!(writer, "] [{}] [{level}] ", std::process::id())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
