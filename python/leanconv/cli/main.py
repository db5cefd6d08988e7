"""Entry point: parse, dispatch, and turn user mistakes into one line + exit 2."""
from __future__ import annotations

import os
import sys

from .errors import CliError


def _bench(opts) -> int:
    from . import bench, report

    # fail before a long run, not after it
    for option, path in (("--json", opts.json_path), ("--csv", opts.csv_path),
                         ("--plot", opts.plot_path)):
        if path is not None:
            _check_writable(option, path)
    if opts.model is not None:
        from . import model
        import leanconv as lc
        if opts.threads is not None:
            lc.set_num_threads(opts.threads)
        return model.run(opts, lc.get_num_threads())
    if opts.plot_path:
        from .plot import require_pyplot
        require_pyplot()
    result = bench.run(opts)
    print(report.format_table(result))
    if opts.json_path:
        _write(report.write_json, result, opts.json_path, "--json")
    if opts.csv_path:
        _write(report.write_csv, result, opts.csv_path, "--csv")
    if opts.plot_path:
        from .plot import plot
        plot(result, opts.plot_path)
    return 0


def _check_writable(option, path):
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CliError(f"{option} {path!r} is a directory")
    if not os.path.isdir(folder):
        raise CliError(f"{option} {path!r}: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise CliError(f"{option} {path!r}: folder {folder!r} is not writable")


def _make_folder(option, path):
    if os.path.exists(path) and not os.path.isdir(path):
        raise CliError(f"{option} {path!r} exists and is not a folder")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise CliError(f"{option} {path!r}: {e.strerror or e}") from None


def _write(writer, result, path, option):
    try:
        writer(result, path)
    except OSError as e:
        raise CliError(f"{option} {path!r}: {e.strerror or e}") from None


def main(argv=None) -> int:
    from .args import build_parser

    parser = build_parser()
    opts = parser.parse_args(argv)
    opts.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if opts.command == "info":
            from . import info
            return info.run(opts)
        if opts.command == "tune":
            from . import tune
            return tune.run(opts)
        if opts.command in ("profile", "split"):
            if opts.command == "split":
                _make_folder("--out", opts.out)   # --json may go inside it
            for option in ("json_path", "plot_path"):
                if getattr(opts, option, None) is not None:
                    _check_writable(f"--{option[:-5]}", getattr(opts, option))
            if opts.command == "profile":
                from . import profile_cmd
                return profile_cmd.run(opts)
            from . import split_cmd
            return split_cmd.run(opts)
        return _bench(opts)
    except CliError as e:
        sys.stderr.write(f"leanconv {opts.command}: error: {e}\n")
        return 2
    except MemoryError:
        sys.stderr.write(f"leanconv {opts.command}: error: out of memory: a layer (or its "
                         f"input) is too large for this machine\n")
        return 2
    except BrokenPipeError:
        # stdout closed early (`leanconv info --json | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("leanconv: interrupted\n")
        return 130
