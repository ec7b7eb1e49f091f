//! Cache prefetch hints for the hot paths: ask the CPU to start loading what they will read
//! soon, so the misses of independent records overlap. A prefetch reads nothing
//! architecturally and cannot fault, whatever the address, so these take any pointer; off
//! x86-64 they do nothing.

/// The cache lines holding `p`, `p + 64`, … `p + 64·(n − 1)`.
#[inline(always)]
pub(crate) fn lines<T>(p: *const T, n: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let p = p.cast::<i8>();
        for k in 0..n {
            // SAFETY: a prefetch is only a hint; it reads nothing architecturally and cannot
            // fault, whatever the address (SSE is baseline on x86-64).
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    p.wrapping_add(64 * k),
                );
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, n);
}

/// The cache line `x` starts in.
#[inline(always)]
pub(crate) fn start<T>(x: &T) {
    lines(x, 1);
}

/// Every cache line `x` spans (a record at any offset may straddle one more than its size
/// fills).
#[inline(always)]
pub(crate) fn whole<T>(x: &T) {
    let (p, size) = ((x as *const T).cast::<u8>(), std::mem::size_of::<T>());
    lines(p, size.div_ceil(64));
    lines(p.wrapping_add(size.saturating_sub(1)), 1);
}
