//! The time the cores use, and whether it is trustworthy: a TSA must refuse to time-stamp when
//! it is not (RFC 3161 §2.4.2 timeNotAvailable; ETSI EN 319 421 §7.7.2 clock synchronisation).

use std::time::SystemTime;

/// How the TSA checks its time source before each token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockCheck {
    /// No check (development only).
    Off,
    /// The kernel's NTP discipline must report the clock synchronised (adjtimex(2): not
    /// TIME_ERROR and STA_UNSYNC clear), as chrony or ntpd set it.
    Kernel,
}

impl ClockCheck {
    /// `Err` with the reason when the clock may not be used for time-stamps.
    pub fn check(self) -> Result<(), String> {
        match self {
            ClockCheck::Off => Ok(()),
            ClockCheck::Kernel => kernel_synchronised(),
        }
    }
}

fn kernel_synchronised() -> Result<(), String> {
    // SAFETY: adjtimex with modes = 0 only reads the kernel's clock state into the zeroed
    // struct we own; it changes nothing.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state == -1 {
        return Err(format!("adjtimex failed: {}", std::io::Error::last_os_error()));
    }
    if state == libc::TIME_ERROR || tx.status & libc::STA_UNSYNC != 0 {
        return Err("the system clock is not synchronised (kernel NTP status unsynchronised)".into());
    }
    Ok(())
}

/// The time, and whether it may be relied on: what every core reads instead of the system
/// clock, so that genTime, validity windows and CRL and OCSP times are testable (as rustls's
/// `TimeProvider` and Boulder's injected clock are).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> SystemTime;

    /// `Err` with the reason when the time may not be used for time-stamps.
    fn check(&self) -> Result<(), String>;

    /// Now as Unix seconds (0 for a time before 1970, which no check would pass).
    fn unix_secs(&self) -> u64 {
        crate::unix_time::secs(self.now())
    }
}

/// The system's clock, checked as `ClockCheck` says.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock(pub ClockCheck);

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn check(&self) -> Result<(), String> {
        self.0.check()
    }
}

/// A clock that stands where a test puts it, synchronised or not.
#[cfg(test)]
#[derive(Debug)]
pub struct FixedClock {
    at: std::sync::Mutex<SystemTime>,
    unsynchronised: std::sync::Mutex<Option<String>>,
}

#[cfg(test)]
impl FixedClock {
    /// A synchronised clock at `since_epoch`.
    pub fn at(since_epoch: std::time::Duration) -> Self {
        FixedClock {
            at: std::sync::Mutex::new(std::time::UNIX_EPOCH + since_epoch),
            unsynchronised: Default::default(),
        }
    }

    /// Moves the clock to `since_epoch`.
    pub fn set(&self, since_epoch: std::time::Duration) {
        *self.at.lock().unwrap() = std::time::UNIX_EPOCH + since_epoch;
    }

    /// From now on the clock reports itself unsynchronised with `reason` (`None`: synchronised).
    pub fn unsynchronised(&self, reason: Option<&str>) {
        *self.unsynchronised.lock().unwrap() = reason.map(str::to_owned);
    }
}

#[cfg(test)]
impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        *self.at.lock().unwrap()
    }

    fn check(&self) -> Result<(), String> {
        self.unsynchronised.lock().unwrap().clone().map_or(Ok(()), Err)
    }
}
