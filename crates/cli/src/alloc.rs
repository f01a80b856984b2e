//! The gateway's memory allocator: mimalloc, called through its C API (ARCHITECTURE.md,
//! Decisions: Memory allocator). The workspace's `unsafe` lives here (STYLE.md, Formatting and
//! lints): the [`GlobalAlloc`] implementation and [`collect`].
//!
//! Why not the `mimalloc` crate's `MiMalloc`: it sends every allocation through
//! `mi_malloc_aligned`, whatever its alignment. In mimalloc v3 that call takes the fast path
//! only for blocks up to 1 KiB; a larger block whose size is not a power of two (a boxed
//! request future, a grown `Vec`, a response head's header map) goes to the generic path,
//! which over-allocates by the alignment and marks the page as holding interior pointers, so
//! its free is slower too: ~1,300 instructions per proxied request (callgrind, P1). Here an
//! alignment that `mi_malloc` already guarantees goes straight to `mi_malloc`, as the standard
//! library's `System` allocator does with glibc's `malloc`.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// The alignment every `mi_malloc` block has: mimalloc's `MI_MAX_ALIGN_SIZE` (16 bytes, its
/// default on every target). With 8-byte pointers mimalloc rounds small blocks to two words
/// (`MI_ALIGN2W`) and starts every page's first block on a 16-byte boundary, so every block
/// size is a multiple of 16 and every block is 16-aligned (`alloc.c` asserts it).
const MIN_ALIGN: usize = 16;

/// Whether a block of `size` bytes aligned to `align` can come from the plain (unaligned)
/// entry points: the alignment is one every block has, and (as for `System`) not larger than
/// the size asked for.
fn plain(align: usize, size: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

/// mimalloc as the global allocator (`main.rs`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Allocator;

// SAFETY: every method returns memory from mimalloc (or null on failure) aligned as `layout`
// asks: the plain entry points only when `plain` holds for the size asked (see `MIN_ALIGN`), the `_aligned` ones
// otherwise; `dealloc` and `realloc` receive only pointers this allocator returned, which
// `mi_free` and `mi_realloc*` accept whichever entry point made them (mimalloc finds a block's
// page from its address).
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain C calls with a size and an alignment; mimalloc returns null on failure.
        unsafe {
            if plain(layout.align(), layout.size()) {
                libmimalloc_sys::mi_malloc(layout.size()).cast()
            } else {
                libmimalloc_sys::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if plain(layout.align(), layout.size()) {
                libmimalloc_sys::mi_zalloc(layout.size()).cast()
            } else {
                libmimalloc_sys::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the `GlobalAlloc` contract).
        unsafe { libmimalloc_sys::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (the `GlobalAlloc` contract);
        // the new block keeps `layout`'s alignment: `plain` is checked against the new size.
        unsafe {
            if plain(layout.align(), new_size) {
                libmimalloc_sys::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                libmimalloc_sys::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

/// Hands the pages mimalloc has freed back to the OS (`main.rs` calls it once a second).
#[allow(unsafe_code)]
pub fn collect() {
    // SAFETY: `mi_collect` takes no pointers and holds no state of ours; mimalloc documents it
    // as callable from any thread at any time (it collects the calling thread's heap).
    unsafe { libmimalloc_sys::mi_collect(false) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Every size and alignment a Rust program asks for comes back aligned, through both
    /// entry points, and survives being written, grown, shrunk and freed.
    #[test]
    #[allow(unsafe_code)]
    fn blocks_are_aligned_as_asked() {
        let a = Allocator;
        let sizes = (1..=256).chain([1000, 1024, 1025, 3000, 4096, 7000, 8192, 9000, 70_000, 1 << 20]);
        for size in sizes {
            for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
                let Ok(layout) = Layout::from_size_align(size, align) else { continue };
                // SAFETY: non-zero sizes; each block is written within its size and freed once
                // with the layout it was made (or last resized) with.
                unsafe {
                    for zeroed in [false, true] {
                        let p = if zeroed { a.alloc_zeroed(layout) } else { a.alloc(layout) };
                        assert!(!p.is_null(), "size {size} align {align}");
                        assert_eq!(p as usize % align, 0, "size {size} align {align} zeroed {zeroed}");
                        if zeroed {
                            assert!(std::slice::from_raw_parts(p, size).iter().all(|b| *b == 0));
                        }
                        p.write_bytes(0xa5, size);
                        let grown = size * 3 + 1;
                        let q = a.realloc(p, layout, grown);
                        assert!(!q.is_null());
                        assert_eq!(q as usize % align, 0, "grown: size {size} align {align}");
                        assert!(std::slice::from_raw_parts(q, size).iter().all(|b| *b == 0xa5));
                        let shrunk = (size / 2).max(1);
                        let grown_layout = Layout::from_size_align(grown, align).unwrap();
                        let r = a.realloc(q, grown_layout, shrunk);
                        assert!(!r.is_null());
                        assert_eq!(r as usize % align, 0, "shrunk: size {size} align {align}");
                        assert!(std::slice::from_raw_parts(r, shrunk).iter().all(|b| *b == 0xa5));
                        a.dealloc(r, Layout::from_size_align(shrunk, align).unwrap());
                    }
                }
            }
        }
    }
}
