//! What this CPU's vector units do per cycle, for the instructions the eight-row matmul and
//! attention are made of: 512-bit `vpdpbusd` (the integer kernels), 512-bit and 256-bit
//! `vfmadd231ps` (the float epilogues, attention, SwiGLU), and `vpdpbusd` interleaved with
//! `vfmadd231ps`. If the interleaved pair costs the sum of the two alone, they run on the same
//! ports, and each float operation a kernel's epilogue adds takes the slot of a `vpdpbusd` (64
//! multiply-adds); if it costs the larger of the two, they overlap.
//!
//! `cargo run --release -p smolrt-core --example port_probe`
//!
//! Each loop runs twelve independent chains (more than any latency here), so it measures
//! throughput. The clock is estimated from a chain of dependent 64-bit `imul`s (3 cycles each
//! on current x86 cores) run after the vector loops, so the per-cycle figures assume those ran
//! at that clock; a core that slows down for 512-bit work reads lower.
//! Needs AVX-512 F + VNNI; elsewhere it says so and exits. The best of five passes is reported.

use std::time::Instant;

const ITERS: u64 = 20_000_000;
const CHAINS: u64 = 12;
const PASSES: usize = 5;

fn main() {
    #[cfg(target_arch = "x86_64")]
    {
        if !(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni")) {
            println!("port_probe: this CPU has no AVX-512 VNNI; nothing to probe");
            return;
        }
        // SAFETY: the features each loop is compiled for were just detected.
        unsafe { probe() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    println!("port_probe: x86-64 only");
}

#[cfg(target_arch = "x86_64")]
unsafe fn probe() {
    let dp = best(|| vpdpbusd_zmm(ITERS));
    let fz = best(|| fma_zmm(ITERS));
    let both = best(|| vpdpbusd_and_fma_zmm(ITERS));
    let fy = best(|| fma_ymm(ITERS));
    let ghz = clock_ghz();
    let per_op = |secs: f64, ops: u64| secs / (ops * CHAINS) as f64 * 1e9;
    let (dp_ns, fz_ns, both_ns, fy_ns) = (
        per_op(dp, ITERS),
        per_op(fz, ITERS),
        per_op(both, ITERS),
        per_op(fy, ITERS),
    );
    println!("scalar clock (imul chain): {ghz:.2} GHz");
    let row = |name: &str, ns: f64, work: f64, unit: &str| {
        println!(
            "{name:<34} {ns:6.3} ns/op  {:6.0} {unit}/ns  {:5.2} ops/cycle",
            work / ns,
            1.0 / (ns * ghz)
        )
    };
    row("vpdpbusd zmm", dp_ns, 64.0, "MAC");
    row("vfmadd231ps zmm", fz_ns, 16.0, "lane");
    row("vfmadd231ps ymm", fy_ns, 8.0, "lane");
    println!(
        "vpdpbusd zmm + vfmadd231ps zmm     {both_ns:6.3} ns/pair: sum of the two alone {:.3}, \
         larger {:.3} -> {}",
        dp_ns + fz_ns,
        dp_ns.max(fz_ns),
        if both_ns > 0.85 * (dp_ns + fz_ns) {
            "they share their ports"
        } else {
            "they overlap"
        }
    );
}

#[cfg(target_arch = "x86_64")]
/// Best wall time of `PASSES` runs of `f`, in seconds.
fn best(mut f: impl FnMut()) -> f64 {
    (0..PASSES)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

/// GHz from the dependent `imul` chain: 4 `imul`s of 3 cycles per iteration.
#[cfg(target_arch = "x86_64")]
fn clock_ghz() -> f64 {
    let secs = best(|| imul_chain(ITERS));
    (ITERS * 4 * 3) as f64 / secs / 1e9
}

#[cfg(target_arch = "x86_64")]
fn imul_chain(iters: u64) {
    // SAFETY: registers only.
    unsafe {
        std::arch::asm!(
            "mov {x}, 3",
            "2:",
            "imul {x}, {x}",
            "imul {x}, {x}",
            "imul {x}, {x}",
            "imul {x}, {x}",
            "dec {n}",
            "jnz 2b",
            n = inout(reg) iters => _,
            x = out(reg) _,
            options(nostack, nomem),
        );
    }
}

#[cfg(target_arch = "x86_64")]
/// `op dst, a, b` for each destination register `width` + number, one instruction a line.
macro_rules! on_each {
    ($op:literal, $a:literal, $b:literal, $width:literal, [$($n:literal),+]) => {
        concat!($($op, " ", $width, $n, ", ", $a, ", ", $b, "\n"),+)
    };
}

#[cfg(target_arch = "x86_64")]
/// The twelve independent accumulators of a loop: registers 0..11 of `width` ("zmm" or
/// "ymm"). The inputs are zmm12 (bytes of 1) and zmm13/zmm14 (0.0 and a normal float).
macro_rules! low {
    ($op:literal, $a:literal, $b:literal, $width:literal) => {
        on_each!($op, $a, $b, $width, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    };
}

#[cfg(target_arch = "x86_64")]
/// zmm16..zmm27: the interleaved loop's fused multiply-adds, so its two streams of twelve never
/// wait on each other.
macro_rules! high {
    ($op:literal, $a:literal, $b:literal) => {
        on_each!(
            $op,
            $a,
            $b,
            "zmm",
            [16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27]
        )
    };
}

#[cfg(target_arch = "x86_64")]
/// Runs `body` `iters` times with every register it may touch declared clobbered. The
/// accumulators start at zero; the integer input is bytes of 1, the float inputs 0.0 and a
/// normal number, so every sum stays zero or small and no operation meets a subnormal.
macro_rules! vector_loop {
    ($iters:expr, $body:expr) => {
        std::arch::asm!(
            "vpternlogd zmm12, zmm12, zmm12, 0xff",
            "vpabsb zmm12, zmm12",
            "vpxord zmm13, zmm13, zmm13",
            "vmovaps zmm14, zmm12",
            low!("vpxord", "zmm13", "zmm13", "zmm"),
            high!("vpxord", "zmm13", "zmm13"),
            "2:",
            $body,
            "dec {n}",
            "jnz 2b",
            n = inout(reg) $iters => _,
            out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _,
            out("zmm4") _, out("zmm5") _, out("zmm6") _, out("zmm7") _,
            out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
            out("zmm12") _, out("zmm13") _, out("zmm14") _,
            out("zmm16") _, out("zmm17") _, out("zmm18") _, out("zmm19") _,
            out("zmm20") _, out("zmm21") _, out("zmm22") _, out("zmm23") _,
            out("zmm24") _, out("zmm25") _, out("zmm26") _, out("zmm27") _,
            options(nostack, nomem),
        )
    };
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn vpdpbusd_zmm(iters: u64) {
    vector_loop!(iters, low!("vpdpbusd", "zmm12", "zmm12", "zmm"));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn fma_zmm(iters: u64) {
    vector_loop!(iters, low!("vfmadd231ps", "zmm13", "zmm14", "zmm"));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,fma")]
unsafe fn fma_ymm(iters: u64) {
    vector_loop!(iters, low!("vfmadd231ps", "ymm13", "ymm14", "ymm"));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni,fma")]
unsafe fn vpdpbusd_and_fma_zmm(iters: u64) {
    vector_loop!(
        iters,
        concat!(
            low!("vpdpbusd", "zmm12", "zmm12", "zmm"),
            high!("vfmadd231ps", "zmm13", "zmm14")
        )
    );
}
