//! Cache prefetch hints for the fold's software pipeline. The crate's only
//! `unsafe`: a prefetch cannot fault and changes nothing the program sees.

/// Asks the CPU to start loading the first `lines` cache lines of `value`.
#[inline(always)]
pub fn lines<T>(value: &T, lines: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let base = (value as *const T).cast::<i8>();
        for line in 0..lines.min(std::mem::size_of::<T>().div_ceil(64)) {
            // SAFETY: a prefetch is only a hint to the cache: it never
            // faults and never reads memory into the program, and the
            // address stays inside `value`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(base.add(line * 64)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (value, lines);
}
