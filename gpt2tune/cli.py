"""`gpt2tune` command line: check, train, generate, push, demo, eval, init-tiny.

Flags are derived from TuneConfig / GenerationSettings, so a new setting appears here by itself.
Bad input exits with code 2 and one line on stderr; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import threading
import typing

from gpt2tune import events
from gpt2tune.config import GenerationSettings, TuneConfig

ALIASES = {"learning_rate": ["--lr"], "csv": ["--data"]}
# Settings a run's time depends on, beyond the data and model ones `check` has anyway (check --estimate).
ESTIMATE_SETTINGS = ("epochs", "max_steps", "gradient_accumulation_steps", "device", "precision", "torch_compile",
                     "pack", "train_on_answers_only", "method", "dropout")


def add_dataclass_flags(parser: argparse.ArgumentParser, cls, only: tuple[str, ...] | None = None) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if only is not None and f.name not in only:
            continue
        flags = ["--" + f.name.replace("_", "-")] + ALIASES.get(f.name, [])
        kind = hints[f.name]
        help_text = f.metadata.get("help", "").replace("%", "%%")  # argparse formats help with %
        default = f.default if f.default is not dataclasses.MISSING else None
        if kind is bool:
            parser.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=_with_default(help_text, "on" if default else "off"))
        elif f.name == "probe_questions":
            parser.add_argument("--probe-question", dest=f.name, action="append", default=[], metavar="QUESTION",
                                help=f"{help_text} Repeat the flag for several questions (default: none).")
        elif typing.get_origin(kind) is list:
            default = f.default_factory()
            parser.add_argument(*flags, dest=f.name, nargs="+", default=default, metavar="NAME",
                                help=f"{help_text} (default: {' '.join(default)})")
        else:
            base = typing.get_args(kind)[0] if typing.get_args(kind) else kind
            if f.metadata.get("auto"):
                base = _auto_int  # "--max-length auto" or 0
            parser.add_argument(*flags, dest=f.name, type=base, default=default, choices=f.metadata.get("choices"),
                                help=_with_default(help_text, _shown_default(default)))


def _shown_default(default) -> str | None:
    """How a default reads in --help: the bundled sample by name, not this machine's absolute path."""
    from gpt2tune.paths import SAMPLE_CSV

    if default is None:
        return None  # the help text says what happens when the setting is left out
    if default == str(SAMPLE_CSV):
        return f"the bundled sample, {SAMPLE_CSV.name}"
    return str(default)


def _with_default(help_text: str, shown: str | None) -> str:
    # Help that already states its default ("(default: detected)") is not told a second time.
    if shown is None or "(default:" in help_text:
        return help_text
    return f"{help_text} (default: {shown})"


def config_from_args(cls, args: argparse.Namespace):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})


class OneLineParser(argparse.ArgumentParser):
    """A usage mistake (`--lr abc`) prints one line and where to look, not the 28-line usage.

    Sub-command parsers inherit the class (argparse builds them with the parent's type)."""

    def error(self, message: str):
        self.exit(2, f"error: {' '.join(message.split())} (see: {self.prog} --help)\n")


def build_parser(check_defaults: dict | None = None) -> argparse.ArgumentParser:
    """check_defaults: settings `check` starts from (its --config file) instead of TuneConfig's."""
    from gpt2tune.hub import push as hub_push  # its defaults; huggingface_hub itself loads only when pushing

    parser = OneLineParser(prog="gpt2tune", description="Fine-tune GPT-2 on question/answer pairs.")
    parser.add_argument("--debug", action="store_true", help="Show full tracebacks on errors.")
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", help="Dataset summary, vocabulary check and devices.")
    add_dataclass_flags(check, TuneConfig, only=("csv", "question_column", "answer_column", "base_model",
                                                 "max_length", "eval_fraction", "seed", "allow_pickle",
                                                 "overlong", "answer_lists", "strip_html", "dataset", "dataset_config",
                                                 "dataset_split", "dataset_revision", "batch_size", "lora_r",
                                                 "lora_dropout", "lora_target_modules", *ESTIMATE_SETTINGS))
    check.add_argument("--offline-fallback", action="store_true",
                       help="Use the offline tiny model when the base model can't be reached.")
    check.add_argument("--estimate", action="store_true",
                       help="Also train a few steps of the run (thrown away) and say how long it will take and "
                            "its peak memory; `train` with the same settings then logs estimate against actual.")
    check.add_argument("--json", action="store_true", help="With --estimate: print only the estimate, as JSON.")
    check.add_argument("--config", default=None, metavar="FILE",
                       help="Start from the settings in this file (a run's gpt2tune_config.json); flags given "
                            "override them.")
    check.set_defaults(**(check_defaults or {}))

    train = commands.add_parser("train", help="Fine-tune and save the model to --output-dir.")
    add_dataclass_flags(train, TuneConfig)
    train.add_argument("--offline-fallback", action="store_true",
                       help="Use the offline tiny model when the base model can't be reached.")

    generate = commands.add_parser("generate", help="Answer a question with a model (folder or Hub id).")
    generate.add_argument("--model", required=True, help="Output folder of a run, or a Hub id.")
    generate.add_argument("--question", required=True, action="append", help="Question (repeat for several).")
    generate.add_argument("--stream", action="store_true", help="Print the answer as it is generated.")
    generate.add_argument("--allow-pickle", action="store_true", help="Allow .bin (pickle) weights.")
    generate.add_argument("--show-nearest", action="store_true",
                          help="After each answer, the most similar training question of the run, its answer "
                               "and their similarity (0-1): recited, or generalised?")
    add_dataclass_flags(generate, GenerationSettings)

    push = commands.add_parser("push", help="Upload a trained model folder to the Hugging Face Hub.")
    push.add_argument("--model", required=True, help="Output folder of a run.")
    push.add_argument("--repo-id", required=True, help="user/name on the Hub.")
    push.add_argument("--private", action=argparse.BooleanOptionalAction, default=hub_push.PRIVATE_DEFAULT,
                      help=f"Create the repo as private (default: {hub_push.PRIVATE_DEFAULT}).")
    push.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the cached login; prefer "
                      "those: a token on the command line shows in the process list and shell history).")
    push.add_argument("--commit-message", default=hub_push.COMMIT_MESSAGE)
    push.add_argument("--verify", action="store_true",
                      help="Download the pushed model into a fresh cache and check weights and answers match.")

    demo = commands.add_parser("demo", help="Write a small chat Space for a trained run (and, with --push, publish it).")
    demo.add_argument("--model", required=True, help="Output folder of a finished run.")
    demo.add_argument("--output-dir", required=True, help="Folder the demo is written to (app.py, requirements.txt, "
                      "README.md, the model); a demo folder already there is replaced.")
    demo.add_argument("--nearest", action="store_true", help="Show the nearest training example under each answer: "
                      "the demo then holds (and a pushed Space publishes) the training questions and answers.")
    demo.add_argument("--push", action="store_true", help="Publish it: the model to --model-repo-id, then the "
                      "demo as a Gradio Space --repo-id.")
    demo.add_argument("--repo-id", default=None, help="user/name of the Space (with --push).")
    demo.add_argument("--model-repo-id", default=None, help="user/name of the model repo the Space loads (default: "
                      "the Space's owner and the run's name); pushed first, unchanged files are not sent again.")
    demo.add_argument("--private", action=argparse.BooleanOptionalAction, default=hub_push.PRIVATE_DEFAULT,
                      help=f"Create the Space and the model repo as private (default: {hub_push.PRIVATE_DEFAULT}).")
    demo.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the cached login).")

    verify = commands.add_parser("verify", help="Check a Hub repo holds the same model as a local folder.")
    verify.add_argument("--model", required=True, help="Output folder of a run.")
    verify.add_argument("--repo-id", required=True, help="user/name on the Hub.")
    verify.add_argument("--token", default=None, help="Hub token for private repos (default: HF_TOKEN or the cached login).")
    verify.add_argument("--revision", default=None, help="Branch, tag or commit to check (default: main).")
    verify.add_argument("--question", action="append", default=None,
                        help="Question to compare answers on (repeatable; default: the run's probe or sample questions).")

    evaluate = commands.add_parser("eval", help="Eval loss, perplexity and answer scores of a model on a Q&A file.")
    evaluate.add_argument("--model", required=True, help="Output folder of a run, or a Hub id.")
    evaluate.add_argument("--csv", "--data", dest="csv", required=True, help="Q&A file (CSV, TSV, JSON or JSONL).")
    evaluate.add_argument("--max-samples", type=int, default=64,
                          help="Questions answered for exact match / F1 / ROUGE-L (0 = loss only; default: 64).")
    evaluate.add_argument("--output", default=None, help="Also write the results to this JSON file.")
    evaluate.add_argument("--max-length", type=_auto_int, default=None,
                          help="Longest example in tokens for the loss (default: the run's own, else the model's "
                               "context; 0 or 'auto': fit 99%% of the file's examples).")
    evaluate.add_argument("--seed", type=int, default=None,
                          help=f"Seed drawing the rows answered (default: the run's seed, else {TuneConfig.seed}).")
    evaluate.add_argument("--question-column", default=None, help="Column holding the questions (default: detected).")
    evaluate.add_argument("--answer-column", default=None, help="Column holding the answers (default: detected).")
    evaluate.add_argument("--allow-pickle", action="store_true", help="Allow .bin (pickle) weights.")

    tiny = commands.add_parser("init-tiny", help="Write a tiny random (untrained) GPT-2 for offline use.")
    tiny.add_argument("output_dir")
    tiny.add_argument("--layers", type=int, default=2)
    tiny.add_argument("--width", type=int, default=64)
    for sub in commands.choices.values():
        # `gpt2tune train ... --debug` works too; SUPPRESS keeps `gpt2tune --debug train ...` intact.
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="Show full tracebacks.")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "config", None):  # the file's settings become the defaults; flags given still win
        try:
            saved = TuneConfig.load(args.config).to_dict()
        except (OSError, ValueError) as error:
            print(f"error: --config {args.config}: {' '.join(str(error).split())}", file=sys.stderr)
            return 2
        args = build_parser(check_defaults=saved).parse_args(argv)
    _quiet_libraries()
    try:
        return COMMANDS[args.command](args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        # Bad input and settings (ValueError) exit 2; anything else, the network included, exits 1.
        # One line either way.
        from gpt2tune.errors import NetworkError

        print(f"error: {_one_line(error)}", file=sys.stderr)
        return 2 if isinstance(error, ValueError) and not isinstance(error, NetworkError) else 1


def _one_line(error: BaseException) -> str:
    from gpt2tune.errors import RunFailed, first_line
    from gpt2tune.training.oom import is_out_of_memory

    text = first_line(error)
    if isinstance(error, (ValueError, RunFailed)):
        return text
    if is_out_of_memory(error):
        return f"out of memory ({text[:200]}); try a smaller --max-length or --max-new-tokens"
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}" + (f": {error.filename}" if error.filename else "")
    return f"{type(error).__name__}: {text[:300]} (run with --debug for the traceback)"


def _quiet_libraries() -> None:
    """Our own progress bar is the one to watch; silence per-file load/save bars and info logs."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")  # no multi-line retry chatter when offline
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # a Hub dataset's per-split bars
    # The variables are read at import; when `main()` runs inside a process that already imported
    # the libraries, say the same thing through their APIs (without importing them here: slow).
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()


def run_check(args) -> int:
    import json

    from gpt2tune.training.checks import run_checks

    config = config_from_args(TuneConfig, args)
    report = run_checks(config, fallback_to_tiny=args.offline_fallback, measure=args.estimate)
    if args.json and report.estimate is not None:
        print(json.dumps(report.estimate.to_dict()))
    else:
        print(report.summary())
    return 0


def run_train(args) -> int:
    from gpt2tune.training.child import die_with_parent
    from gpt2tune.training.train import train

    die_with_parent()  # started by the app: ends with the server

    config = config_from_args(TuneConfig, args)
    stop = threading.Event()
    # Under `accelerate launch` / torchrun every process runs this: the first draws the progress
    # bar and prints the result; the others only say what they did, marked with their rank.
    rank = os.environ.get("RANK", "0")
    main_process = rank == "0"
    printer = ProgressPrinter() if main_process else ProgressPrinter(prefix=f"[rank {rank}] ", lines_only=True)

    def on_interrupt(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt  # second Ctrl-C: give up at once
        stop.set()
        printer.write("stopping at the end of this step and saving the model (Ctrl-C again to abort)...")

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        result = train(config, on_event=printer, stop_event=stop, fallback_to_tiny=args.offline_fallback)
    finally:
        signal.signal(signal.SIGINT, previous)
        printer.close()
    if main_process:
        print(("stopped early; " if result.stopped_early else "") + f"model saved to {result.output_dir}")
        print_metrics(result.metrics)
        tracking = result.metrics.get("tracking") or {}
        if tracking.get("logs"):
            print(f"{tracking['report_to']} logs: {tracking['logs']} (open with: {tracking['command']})")
    return 0


def print_metrics(metrics: dict) -> None:
    """Numbers one per line, then the memorisation verdict and early-stopping reason as sentences."""
    for key, value in metrics.items():
        if isinstance(value, float):
            print(f"  {key}: {value:.4f}")
        elif isinstance(value, (int, str)) and key != "stopped_early_reason":
            print(f"  {key}: {value}")
    if metrics.get("stopped_early_reason"):
        print(f"early stopping: {metrics['stopped_early_reason']}")
    if metrics.get("memorisation"):
        memorisation = metrics["memorisation"]
        print(f"verdict: {memorisation['verdict']}: {memorisation['text']}")


class ProgressPrinter:
    """Turn training events into a progress bar plus lines for evals, warnings and checkpoints."""

    def __init__(self, prefix: str = "", lines_only: bool = False):
        self.bar = None
        self.task_bar = None
        self.finished = False  # the last step was shown: no bar again
        self.tasks_done: set[str] = set()  # tasks shown to their end: not drawn again
        self.prefix = prefix
        self.lines_only = lines_only

    def __call__(self, event: events.Event) -> None:
        if isinstance(event, events.Progress):
            if not self.lines_only:
                self._update_bar(event)
        elif isinstance(event, events.Eval):
            self.write(f"step {event.step}: eval loss {event.eval_loss:.4f}, perplexity {event.perplexity:.2f}")
        elif isinstance(event, events.Status):
            self.write(event.message)
        elif isinstance(event, events.Warning):
            self.write("warning: " + event.message)
        elif isinstance(event, events.Checkpoint):
            self.write(f"checkpoint saved: {event.path}")
        elif isinstance(event, events.Probe):
            self.write(f"step {event.step} probe: {event.question!r} -> {event.answer!r}")
        elif isinstance(event, events.Task) and not self.lines_only:
            self._update_task(event)

    def _update_task(self, event: events.Task) -> None:
        """One bar per task (eval loss, answers...); a new task closes the previous bar."""
        from tqdm.auto import tqdm

        if self.task_bar is None and event.name in self.tasks_done:
            return  # a task already shown to its end
        if self.task_bar is None or self.task_bar.desc != event.name:
            if self.task_bar is not None:
                self.task_bar.close()
            self.task_bar = tqdm(total=event.total, desc=event.name, dynamic_ncols=True, file=sys.stderr,
                                 initial=event.done)
        self.task_bar.n = event.done
        self.task_bar.refresh()
        if event.total and event.done >= event.total:
            self.tasks_done.add(event.name)
            self._close_task()

    def _update_bar(self, event: events.Progress) -> None:
        from tqdm.auto import tqdm

        if self.bar is None:
            if self.finished:
                return
            # Started at the first step seen (1, or a resumed run's checkpoint): tqdm's rate then counts
            # from there, not from 0 steps at the moment the bar appeared (thousands of steps/s).
            self.bar = tqdm(total=event.max_steps, unit="step", dynamic_ncols=True, file=sys.stderr,
                            initial=event.step)
        self.bar.n = event.step
        postfix = {"loss": f"{event.loss:.4f}", "epoch": f"{event.epoch or 0:.2f}"}
        if event.tokens_per_s:
            postfix["tok/s"] = f"{event.tokens_per_s:.0f}"
        self.bar.set_postfix(postfix, refresh=True)
        if event.max_steps and event.step >= event.max_steps:
            # The last step: closed now, so the lines that follow (eval, saving, verdict) are not
            # each followed by the bar drawn again.
            self.bar.close()
            self.bar, self.finished = None, True

    def write(self, message: str) -> None:
        from tqdm.auto import tqdm

        tqdm.write("\n".join(self.prefix + line for line in message.splitlines()), file=sys.stderr)

    def _close_task(self) -> None:
        if self.task_bar is not None:
            self.task_bar.close()
            self.task_bar = None

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self._close_task()


def run_generate(args) -> int:
    from gpt2tune.generate import answer, shared_cache, stream_answer

    settings = config_from_args(GenerationSettings, args)
    settings.validate()
    model, tokenizer = shared_cache().get(args.model, allow_pickle=args.allow_pickle, weights=settings.weights)
    if args.show_nearest:
        from gpt2tune.evaluation.nearest_example import LABEL, describe, run_index

        index, why = run_index(args.model)
    for question in args.question:
        if len(args.question) > 1:
            print(f"Q: {question}")
        if args.stream:
            shown = ""
            for text in stream_answer(model, tokenizer, question, settings):
                print(text[len(shown):], end="", flush=True)
                shown = text
            print()
        else:
            print(answer(model, tokenizer, question, settings))
        if args.show_nearest:
            print(f"{LABEL}: " + " | ".join(" ".join(line.split()) for line in describe(index, why, question)))
    return 0


def run_push(args) -> int:
    from gpt2tune.hub.push import push_to_hub

    url = push_to_hub(args.model, args.repo_id, token=args.token, private=args.private,
                      commit_message=args.commit_message)
    print(f"pushed to {url}")
    if args.verify:
        return run_verify(argparse.Namespace(model=args.model, repo_id=args.repo_id, token=args.token,
                                             revision=None, question=None))
    return 0


def run_demo(args) -> int:
    if not args.push:
        if args.repo_id or args.model_repo_id:
            raise ValueError("--repo-id and --model-repo-id publish the demo: add --push")
        from gpt2tune.demo.build import build_demo

        folder = build_demo(args.model, args.output_dir, nearest=args.nearest).folder
        print(f"demo written to {folder}; try it with: cd {folder} && python app.py")
        return 0
    if not args.repo_id:
        raise ValueError("--push needs --repo-id user/name for the Space")
    from gpt2tune.demo.publish import push_demo

    published = push_demo(args.model, args.output_dir, args.repo_id, token=args.token, private=args.private,
                          model_repo=args.model_repo_id, nearest=args.nearest)
    print(f"model: {published.model_url}\nSpace: {published.space_url}")
    if published.note:
        print(f"note: {published.note}")
    return 0


def run_verify(args) -> int:
    from gpt2tune.hub.roundtrip import verify_roundtrip

    printer = ProgressPrinter()
    try:
        report = verify_roundtrip(args.model, args.repo_id, token=args.token, revision=args.revision,
                                  questions=args.question, on_event=printer)
    finally:
        printer.close()
    print(report.summary())
    return 0 if report.ok else 1


def run_eval(args) -> int:
    import json
    from pathlib import Path

    from gpt2tune.evaluation.evaluate import evaluate_model

    printer = ProgressPrinter()
    try:
        result = evaluate_model(args.model, args.csv, max_samples=args.max_samples, max_length=args.max_length,
                                question_column=args.question_column, answer_column=args.answer_column,
                                allow_pickle=args.allow_pickle, seed=args.seed, on_event=printer)
    finally:
        printer.close()
    print(result["data_summary"])  # what was kept, dropped and cut, and the length used, as train says it
    for warning in result["warnings"]:
        print(f"warning: {warning}")
    print(f"{args.model} on {Path(args.csv).name} ({result['rows']} rows):")
    print_metrics({k: v for k, v in result.items() if k not in ("model", "csv", "data_summary")})
    short = lambda text: " ".join(text.split())[:100]  # noqa: E731  (one line per field)
    for sample in result.get("samples", [])[:3]:
        print(f"  Q: {short(sample['question'])}\n    reference: {short(sample['reference'])}\n"
              f"    generated: {short(sample['generated'])}")
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.output}")
    return 0


def _auto_int(text: str) -> int:
    from gpt2tune.config import parse_auto_int

    try:
        return parse_auto_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a whole number of tokens, got {text!r}") from None


def run_init_tiny(args) -> int:
    from gpt2tune.model import TINY_MODEL_NOTE, init_tiny

    folder = init_tiny(args.output_dir, n_layer=args.layers, n_embd=args.width)
    print(f"wrote {folder}\n{TINY_MODEL_NOTE}")
    return 0


COMMANDS = {
    "check": run_check,
    "train": run_train,
    "generate": run_generate,
    "push": run_push,
    "demo": run_demo,
    "verify": run_verify,
    "eval": run_eval,
    "init-tiny": run_init_tiny,
}
