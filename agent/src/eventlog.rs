//! Warnings and errors to the Windows Event Log, source "Tierwise Agent"
//! (registered by the MSI, with EventCreate.exe's messages, whose event ids
//! 1–1000 show their one string as it is).

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;
use windows_sys::Win32::System::EventLog::{
    RegisterEventSourceW, ReportEventW, EVENTLOG_ERROR_TYPE, EVENTLOG_WARNING_TYPE,
};

/// Event id for warnings and errors (within EventCreate.exe's 1–1000).
const EVENT_ID: u32 = 100;

#[derive(Debug)]
pub struct EventLogLayer {
    /// The event source handle, as an integer so the layer is Send + Sync;
    /// 0 when the source could not be opened (then nothing is written).
    source: isize,
}

impl EventLogLayer {
    /// Opens the event source (nothing is written if that fails).
    #[allow(unsafe_code)]
    pub fn open() -> Self {
        let name: Vec<u16> = crate::service::EVENT_SOURCE
            .encode_utf16()
            .chain(Some(0))
            .collect();
        // SAFETY: `name` is a NUL-terminated UTF-16 string that outlives the
        // call; a null server name means the local computer.
        let handle = unsafe { RegisterEventSourceW(std::ptr::null(), name.as_ptr()) };
        Self {
            source: handle as isize,
        }
    }
}

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for EventLogLayer {
    #[allow(unsafe_code)]
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let kind = match *event.metadata().level() {
            Level::ERROR => EVENTLOG_ERROR_TYPE,
            Level::WARN => EVENTLOG_WARNING_TYPE,
            _ => return,
        };
        if self.source == 0 {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let text: Vec<u16> = message.0.encode_utf16().chain(Some(0)).collect();
        let strings = [text.as_ptr()];
        // SAFETY: the handle came from RegisterEventSourceW and stays open
        // for the process; `strings` holds one NUL-terminated UTF-16 string
        // that outlives the call; no raw data is passed.
        unsafe {
            ReportEventW(
                self.source as _,
                kind,
                0,
                EVENT_ID,
                std::ptr::null_mut(),
                1,
                0,
                strings.as_ptr(),
                std::ptr::null(),
            );
        }
    }
}
