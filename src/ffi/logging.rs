//! `rio_set_log_callback`: log records to the embedding program instead of
//! (or as well as) stderr.

use std::ffi::{c_char, c_int, c_void, CString};

use super::{ffi_boundary, finish};
use crate::Error;

/// No records (removes the callback).
pub const RIO_LOG_OFF: c_int = 0;
/// Failures: a poisoned log, an I/O error the caller also sees.
pub const RIO_LOG_ERROR: c_int = 1;
/// Degraded operation: io_uring fallback and why, slow fsync, recovery cutting a torn tail.
pub const RIO_LOG_WARN: c_int = 2;
/// Lifecycle: runtime opened (and its backend), WAL opened and recovered.
pub const RIO_LOG_INFO: c_int = 3;
/// Per-file and per-segment detail.
pub const RIO_LOG_DEBUG: c_int = 4;
/// Everything.
pub const RIO_LOG_TRACE: c_int = 5;

/// Receives one log record: `level` (RIO_LOG_ERROR..RIO_LOG_TRACE), the
/// emitting module (`target`, e.g. "rio::wal"), the message, and the
/// `user_data` given at registration. The strings are valid only during
/// the call.
pub type rio_log_callback_t =
    Option<unsafe extern "C" fn(level: c_int, target: *const c_char, message: *const c_char, user_data: *mut c_void)>;

struct UserData(*mut c_void);
// SAFETY: the caller promises user_data may be used from any thread
// (documented on rio_set_log_callback).
unsafe impl Send for UserData {}
unsafe impl Sync for UserData {}

/// Sends library log records at `level` and more severe (RIO_LOG_ERROR ..
/// RIO_LOG_TRACE) to `cb`; `cb` NULL or `level` RIO_LOG_OFF removes the
/// callback. Process-wide, independent of RIO_LOG (which still logs to
/// stderr when set).
///
/// The callback may run on any thread, several at once, and must not call
/// rio_set_log_callback itself. `user_data` must stay valid until the
/// callback is replaced: when this function returns, no call of the
/// previous callback is running or will start. Returns 0, or `-EINVAL`
/// for an unknown level or an invalid RIO_LOG.
#[no_mangle]
pub unsafe extern "C" fn rio_set_log_callback(level: c_int, cb: rio_log_callback_t, user_data: *mut c_void) -> c_int {
    ffi_boundary!("rio_set_log_callback", {
        if !(RIO_LOG_OFF..=RIO_LOG_TRACE).contains(&level) {
            return super::fail("rio_set_log_callback", Error::invalid(format!("level: unknown value {level}")));
        }
        let sink = match (cb, level) {
            (Some(cb), l) if l > RIO_LOG_OFF => {
                let data = UserData(user_data);
                Some(Box::new(move |lvl: u8, target: &str, msg: &str| {
                    let target = CString::new(target.replace('\0', " ")).unwrap_or_default();
                    let msg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
                    let data = &data;
                    // SAFETY: the caller registered cb with this user_data.
                    unsafe { cb(lvl as c_int, target.as_ptr(), msg.as_ptr(), data.0) };
                }) as crate::log::LogSink)
            }
            _ => None,
        };
        finish("rio_set_log_callback", crate::log::set_sink(level as u8, sink).map(|_| 0))
    })
}
