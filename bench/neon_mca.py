"""Predicted throughput of the NEON micro-kernels' inner loops on Cortex-A76
and Neoverse-N1 (qemu runs NEON but cannot time it), from llvm-mca.

    python bench/neon_mca.py            # rewrites its section of docs/performance.md
    python bench/neon_mca.py --print    # the table only, to stdout

Needs aarch64-linux-gnu-gcc (.ci/test-neon.sh installs it) and llvm-mca
(Debian's `llvm` package).  Each kernels/neon/*.c is compiled to assembly
exactly as the NEON build compiles it (-O2 -std=c11, generic armv8-a); in
each micro-kernel the innermost loop with the most FMLA instructions is cut
out (the instructions from a label to the backward branch to it, with no
other loop inside; a loop-free transform: its whole body) and given to
llvm-mca for each core.  FMA-unit utilisation = vector FP instructions per
cycle / the FMLAs per cycle llvm-mca's model of that core sustains on a
stream of independent FMLAs (measured the same way), so 100% means the loop
is bound by the FP pipes and nothing else.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from doc_section import write_section  # same folder

ROOT = Path(__file__).resolve().parent.parent
CC = "aarch64-linux-gnu-gcc"
CFLAGS = ["-O2", "-std=c11", "-fno-strict-aliasing", f"-I{ROOT / 'include'}",
          f"-I{ROOT / 'kernels'}"]
CPUS = ("cortex-a76", "neoverse-n1")
ITERATIONS = 200
# micro-kernels to report: name pattern -> what it is
KERNELS = {
    r"lc_f32_gemm_\w+__neon": "GEMM tile",
    r"lc_f32_wino_f\d_input__neon": "Winograd input transform",
    r"lc_f32_wino_f\d_output__neon": "Winograd output transform",
    r"lc_f32_wino_cl_gemm__neon": "Winograd channel-lanes GEMM",
    r"lc_f32_dw_row__neon": "depthwise row",
    r"lc_f32_dw_band__neon": "depthwise band",
    r"lc_f32_dw_cblock__neon": "depthwise channel blocks",
    r"lc_f32_dl_\w+__neon": "direct_lanes (output channels in lanes)",
    r"lc_f32_pw_\w+__neon": "direct_lanes 1x1 (pixels from the NCHW planes)",
}

# b, b.cond and GCC 12's dotless bcond (bne), cbz/cbnz, tbz/tbnz to a local label
_COND = r"(?:eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)"
_BRANCH = re.compile(rf"^\s*(b(?:\.?{_COND})?|cbn?z|tbn?z)\s+(?:[^,]+,\s*)*(\.L\w+)\s*$")
_LABEL = re.compile(r"^(\.L\w+):")


def functions(asm):
    """{name: [lines]} of the functions in a GCC assembly listing."""
    out, cur = {}, None
    for line in asm.splitlines():
        m = re.match(r"^([A-Za-z_]\w*):", line)
        if m:
            cur = m.group(1)
            out[cur] = []
            continue
        if cur and re.match(r"^\s*\.size\s+" + re.escape(cur), line):
            cur = None
            continue
        if cur:
            out[cur].append(line)
    return out


def is_insn(line):
    s = line.strip()
    return bool(s) and not s.startswith((".", "//", "@")) and not _LABEL.match(s)


def inner_loops(lines):
    """[(start, end)] line ranges of loops (label .. backward branch to it)
    that hold no other loop."""
    labels = {m.group(1): i for i, line in enumerate(lines) if (m := _LABEL.match(line.strip()))}
    loops = []
    for i, line in enumerate(lines):
        m = _BRANCH.match(line)
        if m and m.group(2) in labels and labels[m.group(2)] < i:
            loops.append((labels[m.group(2)], i))
    return [(a, b) for a, b in loops
            if not any(a <= c and d <= b and (c, d) != (a, b) for c, d in loops)]


_FP = ("fmla", "fmls", "fmul", "fadd", "fsub", "fmax", "fmin")


def fp_ops(body):
    """(vector FP arithmetic instructions, of which FMLA) in `body`."""
    fp = [ins for ins in body if ins.startswith(_FP) and ".4s" in ins]
    return len(fp), sum(1 for ins in fp if ins.startswith("fmla"))


def hottest_loop(lines, whole=False):
    """Instructions of the inner loop with the most FMLAs (then FP ops); for a function
    without loops, or with whole=True (a transform of one panel), its whole body but the return;
    None without FP work."""
    def clean(part):
        return [ln.strip().split("//")[0].strip() for ln in part if is_insn(ln)]
    loops = inner_loops(lines)
    if not loops or whole:
        body = [ins for ins in clean(lines) if not ins.startswith("ret")]
        return body if fp_ops(body)[0] else None
    best = max((clean(lines[a:b + 1]) for a, b in loops),
               key=lambda body: fp_ops(body)[::-1])  # most FMLAs, then most FP ops
    return best if fp_ops(best)[0] else None


def mca_cycles(body, cpu):
    """Cycles per iteration of `body` that llvm-mca predicts on `cpu`."""
    proc = subprocess.run(["llvm-mca", "-mtriple=aarch64", f"-mcpu={cpu}",
                           f"-iterations={ITERATIONS}"], input="\n".join(body) + "\n",
                          capture_output=True, text=True, check=True)
    m = re.search(r"Total Cycles:\s+(\d+)", proc.stdout)
    return int(m.group(1)) / ITERATIONS


def fmla_peak(cpu):
    """FMLAs per cycle the model sustains on independent 4-lane FMLAs."""
    body = [f"fmla v{i}.4s, v20.4s, v21.4s" for i in range(16)]
    return 16 / mca_cycles(body, cpu)


def analyse():
    rows = []
    peaks = {cpu: fmla_peak(cpu) for cpu in CPUS}
    with tempfile.TemporaryDirectory() as tmp:
        for src in sorted((ROOT / "kernels" / "neon").glob("*.c")):
            out = Path(tmp) / (src.stem + ".s")
            subprocess.run([CC, *CFLAGS, "-S", str(src), "-o", str(out)], check=True)
            for name, lines in functions(out.read_text()).items():
                kind = next((k for pat, k in KERNELS.items() if re.fullmatch(pat, name)), None)
                if kind is None:
                    continue
                # a transform is one panel's straight-line arithmetic per call
                # (its small copy and tail loops aside): its whole body runs
                body = hottest_loop(lines, whole="transform" in kind)
                if body is None:
                    continue
                n_fp, n_fmla = fp_ops(body)
                rec = {"name": name, "kind": kind, "insns": len(body), "fp": n_fp,
                       "fmla": n_fmla}
                for cpu in CPUS:
                    cyc = mca_cycles(body, cpu)
                    rec[cpu] = (cyc, n_fp / cyc / peaks[cpu])
                rows.append(rec)
    return rows, peaks


def table(rows, peaks):
    gcc = subprocess.run([CC, "-dumpfullversion"], capture_output=True, text=True).stdout.strip()
    mca = subprocess.run(["llvm-mca", "--version"], capture_output=True, text=True).stdout
    mca_ver = re.search(r"LLVM version ([\d.]+)", mca)
    lines = ["## NEON: predicted inner-loop throughput (llvm-mca)", "",
             f"Generated by `python bench/neon_mca.py` ({CC} {gcc}, -O2 generic armv8-a as the "
             f"NEON build compiles; llvm-mca {mca_ver.group(1) if mca_ver else '?'}). Per "
             "micro-kernel, the innermost loop with the most FMLAs (a Winograd transform, "
             "one panel of straight-line arithmetic per call: its whole body); cycles per iteration "
             "as llvm-mca predicts them; utilisation = vector FP instructions (FMLA, and the "
             "transforms' FADD/FSUB/FMUL, which issue to the same pipes) per cycle over the "
             "FMLAs per cycle the same model sustains on independent FMLAs (" +
             ", ".join(f"{c}: {p:.2f}/cycle" for c, p in peaks.items()) +
             "; the cores' two 128-bit FP pipes could do 2, so against the hardware the "
             "figures would be lower by that factor where the model is conservative).", "",
             "| micro-kernel | function | insns | FP ops (FMLA) | " +
             " | ".join(f"{c} cycles/iter | {c} FMA util." for c in CPUS) + " |",
             "|---|---|---:|---:|" + "---:|---:|" * len(CPUS)]
    for r in rows:
        lines.append(f"| {r['kind']} | `{r['name']}` | {r['insns']} | {r['fp']} ({r['fmla']}) | " +
                     " | ".join(f"{r[c][0]:.1f} | {100 * r[c][1]:.0f}%" for c in CPUS) + " |")
    lines += [""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--print", action="store_true", help="print the table, write nothing")
    ap.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    args = ap.parse_args()
    for tool in (CC, "llvm-mca"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: apt-get install "
                             f"{'gcc-aarch64-linux-gnu' if tool == CC else 'llvm'}")
    text = table(*analyse())
    if args.print:
        print(text)
        return
    out = Path(args.out)
    write_section(out, "neon-mca", text)
    print(text)
    print("wrote", out)


if __name__ == "__main__":
    main()
