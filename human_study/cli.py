"""`ddd-audit study ...`: create a 2AFC study from an audit, add observers, analyse, export.

Each command is a thin wrapper around one library call in human_study; bad input ends with a
one-line "error: ..." on stderr and a non-zero exit code (2 for a setting out of its bounds), never a
traceback. Importing this module needs only Typer and pydantic: SQLAlchemy and statsmodels are imported
when a command runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer

from audit.schemas import InputError
from human_study import settings as bounds  # the options' bounds (pydantic and audit.schemas only)

TOKEN_ENV = "DDD_STUDY_TOKEN"
DEFAULT_BASE_URL = "http://localhost:8501"

study_app = typer.Typer(
    name="study",
    help="Run a 2AFC psychophysics study built from an audit: which image of a pair is harder for a network?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@contextmanager
def _errors() -> Iterator[None]:
    """Turn the errors a user can fix into one-line messages."""
    try:
        yield
    except typer.Exit:
        raise
    except InputError as err:  # a setting out of its bounds (human_study.settings): a usage error
        _fail(_one_line(err), code=2)
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] in ("sqlalchemy", "statsmodels"):
            _fail(f"missing package {err.name!r}; the study commands need: pip install 'ddd-audit[study]'")
        _fail(f"missing package {err.name!r} (a database driver?); install it into this environment")
    except (ValueError, OSError) as err:  # StudyError and AuditError are ValueErrors
        _fail(_one_line(err))
    except Exception as err:
        if type(err).__module__.startswith("sqlalchemy"):
            _fail(f"database error: {_one_line(err)}")
        raise


def _open(study_dir: Path, db: str | None, token: str | None):
    """The store, study and admin view, or a one-line error."""
    from human_study.folder import open_study_dir

    if not Path(study_dir).is_dir():
        _fail(f"study folder {study_dir} does not exist (it is <audit>/studies/<name>/)")
    if not token:
        _fail(f"an admin token is required: pass --token or set {TOKEN_ENV}")
    store, study = open_study_dir(study_dir, db_url=db)
    try:
        admin = store.admin(study.id, token)
    except Exception:
        store.close()
        raise
    return store, study, admin


STUDY_DIR = typer.Option(..., "--study-dir", help="The study folder (it holds study.json).")
TOKEN = typer.Option(None, "--token", envvar=TOKEN_ENV, help=f"The study's admin token (or set {TOKEN_ENV}).")
DB = typer.Option(None, "--db", help="SQLAlchemy URL of the study database, if not the one in study.json.")
BASE_URL = typer.Option(
    None, "--base-url", help="Address of the study server as observers reach it, e.g. http://10.0.0.5:8501. "
    "The study keeps it (study.json) for every later link; giving it again replaces it. "
    f"Without one, links use {DEFAULT_BASE_URL}, which opens only on this machine."
)


def _links_base(base_url: str | None) -> str:
    """The base of the links to print, saying so when the study has no address of its own."""
    if base_url:
        return base_url
    typer.echo(f"note: this study has no address of its own, so its links use {DEFAULT_BASE_URL}, which opens "
               "only on this machine; give --base-url http://HOST:PORT for observers elsewhere (the study keeps it)",
               err=True)
    return DEFAULT_BASE_URL


@study_app.command()
def create(
    audit: Path = typer.Option(..., "--audit", help="The audit directory (made by `ddd-audit run`)."),
    name: str = typer.Option(..., "--name", help="Study name; the study lives in <audit>/studies/<name>/."),
    db: str | None = typer.Option(
        None,
        "--db",
        help="SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@host/db (default: SQLite study.db).",
    ),
    trials: int = typer.Option(149, "--trials", min=1, max=bounds.MAX_TRIALS, help="Main trials per observer."),
    practice: int = typer.Option(
        5, "--practice", min=0, max=bounds.MAX_PRACTICE, help="Practice trials with feedback (images not used elsewhere)."
    ),
    tolerance: int = typer.Option(
        0, "--tolerance", min=0, max=bounds.MAX_TOLERANCE, help="t: trivial = n_correct >= M - t, impossible = n_correct <= t."
    ),
    match_class: bool = typer.Option(False, "--match-class", help="Pair images of the same class."),
    catch: int = typer.Option(0, "--catch", min=0, max=bounds.MAX_CATCH, help="Catch trials: a trivial image against a pure-noise image."),
    seed: int | None = typer.Option(
        None, "--seed", min=0, max=bounds.MAX_SEED, help="Study seed (pairs and observer orders); random if not given."
    ),
    size: int = typer.Option(224, "--size", min=bounds.MIN_SIZE, max=bounds.MAX_SIZE, help="Stimulus size in pixels (square, not normalised)."),
    question: str = typer.Option(
        "harder", "--question", help="Ask for the 'harder' (paper) or the 'easier' image."
    ),
    observers: int = typer.Option(0, "--observers", min=0, max=bounds.MAX_OBSERVERS, help="Observer codes to create right away."),
    break_every: int | None = typer.Option(
        None, "--break-every", min=0, max=bounds.MAX_TRIALS, help="Offer a break after this many trials (0 = none; default: blocks of at most 50)."
    ),
    sequence: str = typer.Option(
        "meding2022", "--sequence", help="Trial sequence preset: meding2022 (self-paced), lab, masked."
    ),
    fixation_ms: int | None = typer.Option(None, "--fixation-ms", min=0, max=bounds.MAX_PHASE_MS, help="Fixation cross before each pair (ms)."),
    stimulus_ms: int | None = typer.Option(
        None, "--stimulus-ms", min=1, max=bounds.MAX_PHASE_MS, help="Longest presentation of the pair (ms); default until the answer."
    ),
    mask: bool | None = typer.Option(None, "--mask/--no-mask", help="A noise mask after --stimulus-ms."),
    iti_ms: int | None = typer.Option(None, "--iti-ms", min=0, max=bounds.MAX_PHASE_MS, help="Blank interval between trials (ms)."),
    background: str = typer.Option("#808080", "--background", help="Page colour behind the stimuli."),
    fullscreen: bool = typer.Option(False, "--fullscreen", help="Ask observers to switch to full screen."),
    size_deg: float | None = typer.Option(
        None, "--size-deg", min=0.5, max=60, help="Stimulus size in degrees of visual angle (observers calibrate their screen)."
    ),
    distance_cm: float = typer.Option(57.0, "--distance-cm", min=20, max=300, help="Viewing distance proposed at calibration."),
    completion_code: str | None = typer.Option(
        None, "--completion-code", help="Code shown on the debrief for a recruiting service."
    ),
    redirect_url: str | None = typer.Option(
        None, "--redirect-url", help="Link on the debrief back to the recruiting service."
    ),
    attention: str = typer.Option(
        "flag", "--attention", help="Failed catch trials: 'flag' the observer, or 'end' the experiment."
    ),
    attention_max_failures: int = typer.Option(
        1, "--attention-max-failures", min=1, max=bounds.MAX_ATTENTION_FAILURES, help="Failed catch trials that end it (with --attention end)."
    ),
    open_enrolment: bool = typer.Option(
        False, "--open-enrolment", help="One link for a recruiting service; each participant id gets an observer."
    ),
    design: str = typer.Option(
        "fixed", "--design", help="'fixed' (trivial against impossible, meding2022) or 'adaptive' (the gap in "
        "model difficulty between the two images, chosen per observer)."
    ),
    procedure: str = typer.Option("quest", "--procedure", help="Adaptive: 'quest' (QUEST+) or 'staircase' (2-down-1-up)."),
    lapse: float = typer.Option(0.02, "--lapse", min=0, max=0.2, help="Adaptive: QUEST+'s fixed lapse rate."),
    levels: int = typer.Option(20, "--levels", min=2, max=bounds.MAX_LEVELS, help="Adaptive: the most gaps to draw pairs at."),
    pairs_per_level: int | None = typer.Option(
        None, "--pairs-per-level", min=1, max=bounds.MAX_TRIALS, help="Adaptive: pairs drawn per gap (default 40)."
    ),
    psychometric: str = typer.Option(
        "weibull", "--psychometric", help="Adaptive: the psychometric function fitted (weibull or logistic)."
    ),
    base_url: str | None = BASE_URL,
    allow_incomplete: bool = typer.Option(
        False, "--allow-incomplete", help="Make the study even from an audit that is not complete or has fewer "
        "models than its split needs (the results page then says so)."
    ),
) -> None:
    """Create a study from an audit and print its links and admin token.

    Examples:

        ddd-audit study create --audit runs/default --name pilot

        ddd-audit study create --audit runs/default --name pilot2 --trials 60 --catch 6 --observers 9 --base-url http://10.0.0.5:8501

        ddd-audit study create --audit runs/default --name masked --sequence masked --size-deg 4 --fullscreen

        ddd-audit study create --audit runs/default --name online --catch 4 --attention end --open-enrolment --completion-code C1A2B3 --redirect-url https://app.prolific.com/submissions/complete?cc=C1A2B3

        ddd-audit study create --audit runs/default --name threshold --design adaptive --trials 120
    """
    with _errors():
        from human_study.design import DesignConfig
        from human_study.folder import create_study
        from human_study.links import observer_link

        if base_url is not None:
            observer_link(base_url, "0" * 12, "CODE")  # checks the URL before anything is written
        from human_study.design import SEQUENCE_PRESETS

        if sequence not in SEQUENCE_PRESETS:
            _fail(f"--sequence must be one of {', '.join(SEQUENCE_PRESETS)}, got {sequence!r}", code=2)
        given = {"fixation_ms": fixation_ms, "stimulus_ms": stimulus_ms, "mask": mask, "iti_ms": iti_ms}
        timing = {**SEQUENCE_PRESETS[sequence], **{k: v for k, v in given.items() if v is not None}}
        config = DesignConfig(
            **timing,
            background=background,
            fullscreen=fullscreen,
            size_deg=size_deg,
            viewing_distance_cm=distance_cm,
            completion_code=completion_code,
            redirect_url=redirect_url,
            attention_policy=attention,
            attention_max_failures=attention_max_failures,
            open_enrolment=open_enrolment,
            n_trials=trials,
            n_practice=practice,
            n_catch=catch,
            tolerance=tolerance,
            match_class=match_class,
            size=size,
            question=question,
            seed=seed,
            break_every=break_every,
            design=design,
            procedure=procedure,
            lapse=lapse,
            n_levels=levels,
            pairs_per_level=pairs_per_level,
            psychometric=psychometric,
        )
        config.validate()  # the settings first: nothing is read or written before they are sound
        if not Path(audit).exists():
            _fail(f"audit directory {audit} does not exist")
        made = create_study(audit, name, config=config, db_url=db, n_observers=observers, base_url=base_url,
                            allow_incomplete=allow_incomplete)
        _print_created(made, base_url)


def _print_created(made, base_url: str | None) -> None:
    """What `study create` prints: the study, its design and trials, its links and the admin token."""
    from human_study.folder import audit_state_of
    from human_study.links import observer_link, recruitment_link
    from human_study.schema import public_url

    d, c = made.design, made.design.config
    for problem in (audit_state_of(made.folder) or {}).get("problems", []):
        typer.echo(f"warning: {problem} (made anyway: --allow-incomplete)", err=True)
    typer.echo(
        f"Created study {made.name!r} (id {made.study_id}): {c.n_trials} trials, {c.n_practice} practice, "
        f"{c.n_catch} catch"
    )
    typer.echo(f"  folder:   {made.folder}")
    typer.echo(f"  database: {public_url(made.db_url)}")
    if c.design == "adaptive":
        typer.echo(_adaptive_summary(d))
    else:
        typer.echo(
            f"  pairs from {d.n_trivial} trivial and {d.n_impossible} impossible images "
            f"(tolerance {c.tolerance}, {d.n_models} models{', class-matched' if c.match_class else ''}), seed {c.seed}"
        )
    typer.echo(
        f"  trials: fixation {c.fixation_ms} ms, pair {'until the answer' if c.stimulus_ms is None else f'{c.stimulus_ms} ms'}"
        f"{', then a mask' if c.mask else ''}, blank interval {c.iti_ms} ms; background {c.background}"
        f"{f', {c.size_deg:g} degrees (observers calibrate)' if c.size_deg else f', {c.size} px'}"
    )
    base_url = _links_base(base_url)
    typer.echo(f"Observer link: {observer_link(base_url, made.study_id, 'CODE')}")
    if c.open_enrolment:
        typer.echo(f"Recruiting service's link (one for everyone): {recruitment_link(base_url, made.study_id)}")
    if made.observer_codes:
        for k, code in enumerate(made.observer_codes, start=1):
            typer.echo(f"  subject-{k:02d}  {code}  {observer_link(base_url, made.study_id, code)}")
    else:
        typer.echo(
            f"  make observer codes with: ddd-audit study add-observers --study-dir {made.folder} --token TOKEN --count N"
        )
    typer.echo(
        f"Admin token (shown once; needed to add observers, analyse and export): {made.admin_token}"
    )
    typer.echo(
        f"Serve it to observers: ddd-audit study serve --study-dir {made.folder}\n"
        "  (that server shows only the experiment, and the results at /results behind the admin token; "
        f"read the report in your own app with: ddd-audit app {made.folder.parent.parent})"
    )


@study_app.command("add-observers")
def add_observers(
    study_dir: Path = STUDY_DIR,
    token: str | None = TOKEN,
    count: int | None = typer.Option(
        None, "--count", help="How many random codes to make (default 1 without --code)."
    ),
    code: list[str] = typer.Option(
        [], "--code", help="A code of your own (3-32 letters, digits, - or _); repeatable."
    ),
    db: str | None = DB,
    base_url: str | None = BASE_URL,
) -> None:
    """Create observer codes and print one link per observer, at the study's own address.

    Examples:

        ddd-audit study add-observers --study-dir runs/default/studies/pilot --token TOKEN --count 9

        DDD_STUDY_TOKEN=TOKEN ddd-audit study add-observers --study-dir runs/default/studies/pilot --code P01 --code P02
    """
    with _errors():
        from human_study.folder import record_base_url, study_base_url
        from human_study.links import observer_link

        if base_url is not None:
            observer_link(base_url, "0" * 12, "CODE")
        n = count if count is not None else (0 if code else 1)
        store, study, admin = _open(study_dir, db, token)
        with store:
            made = admin.add_observers(n, codes=code)
        if base_url is not None:
            record_base_url(study_dir, base_url)
        base_url = _links_base(base_url or study_base_url(study_dir))
        for obs in made:
            typer.echo(f"{obs.subject}  {obs.code}  {observer_link(base_url, study.id, obs.code)}")


@study_app.command()
def analyze(
    study_dir: Path = STUDY_DIR,
    token: str | None = TOKEN,
    db: str | None = DB,
    alpha: float = typer.Option(0.05, "--alpha", help="1 - confidence level of the intervals."),
    figures: Path | None = typer.Option(
        None, "--figures", help="Also write the figures (PNG and PDF) into this folder."
    ),
    psychometric: str | None = typer.Option(
        None, "--psychometric", help="An adaptive study's psychometric function: weibull or logistic (default: "
        "the study's own)."
    ),
) -> None:
    """Print the summary in meding2022's form, accuracy, binomial tests, intervals, error
    consistency, learning effect and RTs, and an adaptive study's psychometric functions (psignifit);
    with --figures, draw them too.

    Examples:

        ddd-audit study analyze --study-dir runs/default/studies/pilot --token TOKEN

        DDD_STUDY_TOKEN=TOKEN ddd-audit study analyze --study-dir runs/default/studies/pilot --alpha 0.01 --figures figures/
    """
    with _errors():
        from human_study.analysis import analyze as run_analysis
        from human_study.analysis import format_analysis
        from human_study.results import default_block, n_numbers

        if not 0 < alpha < 1:
            _fail(f"--alpha must be between 0 and 1, got {alpha}")
        store, study, admin = _open(study_dir, db, token)
        with store:
            frame = admin.responses_frame()
            people = admin.observers()
        finished = sum(o.finished_at is not None for o in people)
        typer.echo(
            f"Study {study.name!r} (id {study.id}): {len(people)} observers, {finished} finished, "
            f"{len(frame)} responses; question: which image is {study.question}?"
        )
        typer.echo("")
        result = run_analysis(
            frame, alpha=alpha, block=default_block(study), n_numbers=n_numbers(study)
        )
        typer.echo(format_analysis(result))
        fits = _psychometric(study, frame, psychometric)
        if figures is not None and not len(frame):
            typer.echo("\nNo figures: the study has no responses yet")
        elif figures is not None:
            from human_study.figures import write_figures

            written = write_figures(result, frame, figures, prefix=study.name, fits=fits)
            typer.echo(f"\nWrote {len(written)} figure files to {figures}")


def _adaptive_summary(design) -> str:
    """What an adaptive study's pool holds, in one line."""
    c = design.config
    main = design.of_kind("main")
    gaps = sorted({p.trivial_n_correct - p.impossible_n_correct for p in main})
    what = "QUEST+ (threshold and slope, guess 0.5, lapse " + f"{c.lapse:g})" if c.procedure == "quest" else "a 2-down-1-up staircase"
    return (f"  adaptive: {len(main)} pairs at {len(gaps)} gaps in mean correctness ({gaps[0]}/{design.n_models} to "
            f"{gaps[-1]}/{design.n_models}){', class-matched' if c.match_class else ''}; each observer's next gap "
            f"from {what}; seed {c.seed}")


def _psychometric(study, frame, sigmoid: str | None) -> dict | None:
    """Print an adaptive study's psychometric fits and return them ({subj: fit}); None for a fixed study."""
    from human_study.psychometric import SIGMOIDS, format_fits, study_fits

    if sigmoid is not None and sigmoid not in SIGMOIDS:
        _fail(f"--psychometric must be one of {', '.join(SIGMOIDS)}, got {sigmoid!r}", code=2)
    if "level" not in frame:
        if sigmoid is not None:
            _fail("--psychometric needs an adaptive study (study create --design adaptive); this one is fixed", code=2)
        return None
    table, fits = study_fits(frame, study.config, sigmoid=sigmoid)
    typer.echo("")
    typer.echo(format_fits(table))
    return fits


@study_app.command()
def serve(
    study_dir: list[Path] = typer.Option(..., "--study-dir", help="A study folder to serve; repeatable."),
    host: str | None = typer.Option(None, "--host", help="Address to listen on (default: 127.0.0.1 for a study "
                                    "reached at localhost, else every interface, 0.0.0.0)."),
    port: int | None = typer.Option(None, "--port", help="Port (default: the study's own, else 8501)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the server's command line; start nothing."),
) -> None:
    """Serve studies to observers: the experiment at each observer's link, the results at /results behind
    the admin token, and nothing of the report or of Streamlit's menus.

    Examples:

        ddd-audit study serve --study-dir runs/default/studies/pilot

        ddd-audit study serve --study-dir runs/default/studies/pilot --host 0.0.0.0 --port 8502
    """
    with _errors():
        import os

        from human_study.folder import read_study_json, study_base_url
        from human_study.serve import listen_address, study_server_command

        for folder in study_dir:
            read_study_json(folder)  # a study folder, or a clear error
        recorded = study_base_url(study_dir[0])
        listen_host, listen_port = listen_address(recorded, host, port)
        cmd = study_server_command(study_dir, listen_host, listen_port)
        typer.echo(f"Serving {len(study_dir)} {'study' if len(study_dir) == 1 else 'studies'} on "
                   f"{listen_host}:{listen_port}; observers open their links at "
                   f"{recorded or f'http://localhost:{listen_port}'} (stop with Ctrl+C)")
        if dry_run:
            typer.echo(" ".join(cmd))
            return
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        os.execv(cmd[0], cmd)  # the server takes this process's place: a signal to it stops the server


@study_app.command()
def export(
    study_dir: Path = STUDY_DIR,
    token: str | None = TOKEN,
    db: str | None = DB,
    out: Path | None = typer.Option(None, "--out", help="Output folder (default: <study-dir>/export)."),
) -> None:
    """Write the responses as CSV: model-vs-human raw-data layout, and a complete table.

    Examples:

        ddd-audit study export --study-dir runs/default/studies/pilot --token TOKEN

        ddd-audit study export --study-dir runs/default/studies/pilot --token TOKEN --out results/
    """
    with _errors():
        from human_study.export import write_exports

        store, study, admin = _open(study_dir, db, token)
        with store:
            frame = admin.responses_frame()
        folder = out if out is not None else Path(study_dir) / "export"
        written = write_exports(frame, folder, prefix=study.name)
        if "level" in frame:  # an adaptive study: its levels as a tidy table too
            from human_study.export import write_tidy

            written += (write_tidy(frame, folder, prefix=study.name),)
        typer.echo(f"Wrote {len(frame)} responses:")
        for path in written:
            typer.echo(f"  {path}")
