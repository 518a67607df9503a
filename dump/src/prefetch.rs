//! Asking the CPU for cache lines ahead of a read (x86_64 only; elsewhere nothing).

/// Cache lines of `bytes` asked for (x86_64 only; elsewhere nothing).
pub(crate) fn prefetch_bytes(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch reads nothing and cannot fault; the address is in a live slice.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Asks for the cache lines of `v` (a listed task that will be read a few tasks from now;
/// x86_64 only; elsewhere nothing).
pub fn prefetch_value<T>(v: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = (v as *const T).cast::<i8>();
        let size = std::mem::size_of::<T>();
        for offset in (0..size).step_by(64).chain(size.checked_sub(1)) {
            // SAFETY: a prefetch reads nothing and cannot fault; the lines are a live value's.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}
