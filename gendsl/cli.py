"""The ``gendsl`` command line.

``check``, ``fmt``, ``graph`` and ``derive`` use the front end only and never import torch;
``compile``, ``train``, ``sample`` and ``eval`` import the back ends on demand.

Exit codes: 0 success, 1 a spec, data or training error (a located diagnostic), 2 a usage error,
3 an internal error (a bug: "please report"; the trace is shown with ``--debug``).
"""

from __future__ import annotations

import argparse
import functools
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from gendsl.cache import write_atomic
from gendsl.cli_checks import check_eval_args, check_sample_args, check_train_args
from gendsl.errors import (
    DataError,
    Diagnostic,
    GendslError,
    InternalError,
    SpecErrors,
    TrainingError,
    UsageError,
)

__all__ = ["main"]

EXIT_OK, EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder, expected a .gen file") from None
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from None


def _write_bytes(data: bytes, f) -> None:
    f.write(data)


# ------------------------------------------------------------------------------ front end


def cmd_check(args: argparse.Namespace) -> int:
    from gendsl.analysis import check_file

    failed = False
    for path in args.files:
        try:
            models = check_file(path)
        except (SpecErrors, Diagnostic) as err:
            print(err.render(), file=sys.stderr)
            failed = True
            continue
        if not args.quiet:
            names = ", ".join(f"{m.name} [{m.family}]" for m in models)
            print(f"{path}: ok ({names})")
    return EXIT_SPEC if failed else EXIT_OK


def cmd_fmt(args: argparse.Namespace) -> int:
    from gendsl.frontend.parser import parse
    from gendsl.frontend.printer import format_source

    changed = []
    for path in args.files:
        raw = _read(path)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            parse(raw, path)  # raises the located "not UTF-8" diagnostic
            raise
        formatted = format_source(text, path)
        if args.stdout:
            sys.stdout.write(formatted)
        elif formatted != text:
            changed.append(path)
            if not args.check:
                write_atomic(Path(path), functools.partial(_write_bytes, formatted.encode()))
    for path in changed:
        print(f"{'would reformat' if args.check else 'reformatted'} {path}", file=sys.stderr)
    return EXIT_SPEC if (args.check and changed) else EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    from gendsl.analysis import load_checked
    from gendsl.analysis.draw import write_graph

    model = load_checked(args.file, args.model)
    write_graph(model, Path(args.output))
    print(f"wrote {args.output}")
    return EXIT_OK


def cmd_derive(args: argparse.Namespace) -> int:
    from gendsl.analysis import load_checked
    from gendsl.symbolic.steps.output import derive_output

    model = load_checked(args.file, args.model)
    text = derive_output(model, format=args.format, brief=args.brief)
    sys.stdout.write(text.rstrip("\n") + "\n")
    return EXIT_OK


# ------------------------------------------------------------------------------ back ends


def _bindings(pairs: Sequence[str]) -> dict[str, int]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not value.strip().lstrip("-").isdigit():
            raise UsageError(f"--set expects NAME=INTEGER, got {pair!r}")
        out[name.strip()] = int(value)
    return out


def cmd_compile(args: argparse.Namespace) -> int:
    from gendsl.runs import build_model

    model = build_model(
        args.spec, model_name=args.model, data=args.data, bindings=_bindings(args.set)
    )
    print(model.describe())
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    check_train_args(args)  # before torch is imported: a usage mistake is reported at once
    from gendsl.runs import train_run
    from gendsl.train.distributed import train_command

    return train_command(args, train_run)


def cmd_sample(args: argparse.Namespace) -> int:
    check_sample_args(args)
    from gendsl.run_sampling import sample_run

    sample_run(args)
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    check_eval_args(args)
    from gendsl.run_eval import eval_run

    eval_run(args)
    return EXIT_OK


# ------------------------------------------------------------------------------ parser


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (exit 2 through the common handler)."""

    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise UsageError(message)


_TEMPERATURE = (
    "sample a flow at temperature T: the base's standard deviation times T (Kingma & Dhariwal "
    "2018; default: the spec's sample with ancestral(temperature = T), else 1)"
)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gendsl", description="A declarative language for deep generative models.")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("check", help="check specs; report every error")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("-q", "--quiet", action="store_true", help="print nothing for clean files")
    c.set_defaults(handler=cmd_check)

    f = sub.add_parser("fmt", help="reformat specs canonically (comments kept)")
    f.add_argument("files", nargs="+", metavar="FILE")
    f.add_argument("--check", action="store_true", help="exit 1 if a file would change")
    f.add_argument("--stdout", action="store_true", help="print instead of rewriting")
    f.set_defaults(handler=cmd_fmt)

    g = sub.add_parser("graph", help="draw the model graph (.dot, .svg, .png)")
    g.add_argument("file", metavar="FILE")
    g.add_argument("-o", "--output", required=True, metavar="OUT")
    g.add_argument("--model", help="which model of the file (default: the last)")
    g.set_defaults(handler=cmd_graph)

    d = sub.add_parser("derive", help="show the derivation for this spec, step by step, checked")
    d.add_argument("file", metavar="FILE")
    d.add_argument("--model", help="which model of the file (default: the last)")
    d.add_argument("--format", choices=["text", "markdown", "latex", "notebook"], default="text")
    d.add_argument("--brief", action="store_true", help="the derived results only, no steps")
    d.set_defaults(handler=cmd_derive)

    co = sub.add_parser("compile", help="print the compiled model: sites, networks, objective")
    co.add_argument("spec", metavar="SPEC")
    co.add_argument("--model", help="which model of the file (default: the last)")
    co.add_argument("--data", help="data set name or file, to bind symbolic sizes")
    co.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=INT",
        help="bind a symbolic size, e.g. --set D=2",
    )
    co.set_defaults(handler=cmd_compile)

    t = sub.add_parser("train", help="train a spec on data")
    t.add_argument("spec", metavar="SPEC")
    t.add_argument("--model", help="which model of the file (default: the last)")
    t.add_argument("--data", help="data set name (moons, digits_binary, ...) or a file/folder")
    t.add_argument(
        "--source-data",
        metavar="NAME",
        help="samples of the source x0 of a data -> data flow (data x0 and data x1)",
    )
    t.add_argument("--steps", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--seed", type=int, help="random seed (default 0; on --resume the run's)")
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    t.add_argument("--out", metavar="DIR", help="run directory (default runs/<model>)")
    t.add_argument("--resume", action="store_true", help="continue from DIR's checkpoint")
    t.add_argument(
        "--overwrite", action="store_true", help="replace the run in DIR (default: refuse)"
    )
    t.add_argument("--eval-every", type=int)
    t.add_argument("--checkpoint-every", type=int)
    t.add_argument(
        "--teacher",
        metavar="RUN",
        help="trained diffusion run to distil from (loss consistency(teacher = ...))",
    )
    t.add_argument(
        "--base",
        metavar="RUN",
        help="trained base run for a ControlNet (guidance control(base = ...))",
    )
    t.add_argument("--no-progress", action="store_true")
    t.add_argument(
        "--compile", action="store_true", help="run the training step under torch.compile"
    )
    t.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train one model data-parallel in N processes (starts torchrun)",
    )
    t.set_defaults(handler=cmd_train, parser=t)

    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("run", metavar="RUN", help="a run directory or a checkpoint file")
    s.add_argument("-n", type=int, default=1000)
    s.add_argument("--method")
    s.add_argument("--steps", type=int)
    s.add_argument("--schedule", help="time steps of a diffusion sampler (e.g. log_snr_jump)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    s.add_argument("--out", metavar="FILE", help="save the samples: .npy, .npz or .pt")
    s.add_argument("--plot", metavar="FILE", help="plot the samples: .png, .pdf or .svg")
    s.add_argument(
        "--condition",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a declared condition: a class index, a number or a .npy file (repeatable)",
    )
    s.add_argument("--guidance-scale", type=float, help="a guided model's scale (cfg, classifier)")
    s.add_argument("--temperature", type=float, help=_TEMPERATURE)
    s.set_defaults(handler=cmd_sample)

    e = sub.add_parser("eval", help="evaluate a trained run: NLL/ELBO, W2, MMD, P/R, FD")
    e.add_argument("run", metavar="RUN")
    e.add_argument("--data", help="data to compare with (default: the run's)")
    e.add_argument("-n", "--n", type=int, default=1000, dest="n")
    e.add_argument("--method")
    e.add_argument("--steps", type=int)
    e.add_argument("--schedule", help="time steps of a diffusion sampler (e.g. log_snr_jump)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    e.add_argument("--guidance-scale", type=float, help="a guided model's scale (cfg, classifier)")
    e.add_argument("--temperature", type=float, help=_TEMPERATURE)
    e.add_argument("--json", action="store_true")
    e.add_argument(
        "--no-likelihood",
        action="store_true",
        help="sample metrics only: skip the NLL/ELBO (a diffusion model's PF-ODE NLL and SDE "
        "ELBO take minutes on a CPU for 28-px images)",
    )
    e.add_argument(
        "--features",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="FID and IS with inception=WEIGHTS.pth, LPIPS diversity with lpips=WEIGHTS.pth "
        "(local files, loaded with weights_only=True; repeatable)",
    )
    e.add_argument(
        "--nfe-sweep",
        metavar="N,N,...",
        help="W2 against NFE for every sampler of a diffusion/matching run (a table)",
    )
    e.add_argument("--samplers", metavar="NAME,...", help="only these samplers in --nfe-sweep")
    e.add_argument(
        "--guidance-sweep",
        metavar="W,W,...",
        help="W2 and precision/recall against the guidance scale of a guided run (a table)",
    )
    e.add_argument("--plot", metavar="FILE", help="plot the sweep (.png, .pdf or .svg)")
    e.set_defaults(handler=cmd_eval)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        args = _parser().parse_args(argv)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except (SpecErrors, Diagnostic) as err:
        print(err.render(), file=sys.stderr)
        return EXIT_SPEC
    except (DataError, TrainingError) as err:
        message = str(err)  # a located message already reads "file:line:col: error: ..."
        print(message if ": error: " in message else f"error: {message}", file=sys.stderr)
        return EXIT_SPEC
    except UsageError as err:
        print(f"gendsl: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except InternalError as err:
        print(f"gendsl: {err}", file=sys.stderr)
        if debug:
            traceback.print_exc()
        return EXIT_INTERNAL
    except GendslError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_SPEC
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as err:  # a bug: never a bare traceback for the user
        print(
            f"gendsl: internal error, please report: {type(err).__name__}: {err}", file=sys.stderr
        )
        if debug:
            traceback.print_exc()
        else:
            print("(run with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
