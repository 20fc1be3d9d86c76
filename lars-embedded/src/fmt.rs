//! The logging facade: `defmt` on targets, `log` on the host, nothing without either feature.
//! Only `{}` and `{:?}` placeholders are used, which both understand.

#[cfg(all(feature = "defmt", feature = "log"))]
compile_error!("enable at most one of the `defmt` and `log` features");

macro_rules! info {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        ::defmt::info!($($arg)*);
        #[cfg(feature = "log")]
        ::log::info!($($arg)*);
        #[cfg(not(any(feature = "defmt", feature = "log")))]
        let _ = ($($arg)*);
    }};
}

macro_rules! warning {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        ::defmt::warn!($($arg)*);
        #[cfg(feature = "log")]
        ::log::warn!($($arg)*);
        #[cfg(not(any(feature = "defmt", feature = "log")))]
        let _ = ($($arg)*);
    }};
}

pub(crate) use {info, warning};
