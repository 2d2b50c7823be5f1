//! Is the system clock trustworthy? A TSA must refuse to time-stamp when it is not
//! (RFC 3161 §2.4.2 timeNotAvailable; ETSI EN 319 421 §7.7.2 clock synchronisation).

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
