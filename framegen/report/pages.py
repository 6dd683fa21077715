"""The listening report's two pages, the run page and the sweep page: what framegen.report.collect read, laid out
in framegen.report.html's blocks. Static HTML and CSS, a few lines of JavaScript (sorting, play all).
"""

from __future__ import annotations

from pathlib import Path

from framegen.report.collect import ASSETS_DIR, REPORT_FILE, Clip, RunView
from framegen.report.html import (Ids, Links, anchor, contents, document, esc, facts_line, flag_badges, key_values,
                                  metric_list, missing_section, number, player, sort_value)


# ---------------------------------------------------------------------------------------------------- the run page


def metric_docs() -> dict[str, tuple[str, str]]:
    """{metric: (summary, details)} from framegen.evaluate.METRICS, so a metric added there is explained here."""
    from framegen.evaluate import METRICS

    return dict(METRICS)


def _short_docs() -> dict[str, str]:
    return {name: summary for name, (summary, _) in metric_docs().items()}


def _clip_block(clip: Clip, links: Links, ids: Ids, docs: dict, at: str, extra: str = "") -> str:
    """A clip's section (id ``at``): title, flags, facts, player, its figures, note and metrics."""
    length = f' <span class="muted">· {clip.seconds:.1f} s</span>' if clip.exists else ""
    parts = [f'<section class="clip" id="{at}"><h3 id="{at}-h">{esc(clip.title)}{length} '
             f'<span class="flags">{flag_badges(clip.flags, clip.note if clip.exists else "missing")}</span></h3>',
             facts_line(clip.facts), extra, player(clip, links, ids, labelled_by=f"{at}-h")]
    if clip.figure is not None and clip.figure.is_file():
        parts.append(links.image(clip.figure, f"log-mel spectrogram and onset envelope of {clip.title} beside the "
                                              f"song's"))
    if clip.path_figure is not None and clip.path_figure.is_file():
        parts.append(links.image(clip.path_figure, f"path of {clip.title} through the song: output time against "
                                                   f"song time, jumps as breaks", "narrow"))
    if clip.exists and clip.note:
        parts.append(f'<p class="muted">{esc(clip.note)}</p>')
    parts.append(metric_list(clip.metrics, docs))
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def _song_facts(view: RunView) -> list:
    cfg = view.cfg
    rate = cfg.data.sample_rate
    name = Path(cfg.song).name if cfg.song else "(none recorded)"
    state = "" if cfg.song and Path(cfg.song).is_file() else ' <span class="flag warn">missing</span>'
    return [("song", f'<span title="{esc(cfg.song)}">{esc(name)}</span>{state}'),
            ("length", f"{cfg.song_samples / rate:.1f} s at {rate:,} Hz ({cfg.song_samples:,} samples)"),
            ("held out", f"the last {cfg.data.val_fraction:.0%} (validation, and the prompts below)")]


def _model_facts(view: RunView) -> list:
    d, m, t = view.cfg.data, view.cfg.model, view.cfg.train
    rate = d.sample_rate
    mode = "MSE: predicts the next frame's samples"
    if m.output == "vq":
        mode = f"VQ: softmax over {m.codebook} codes ({m.codebook_kind}), emits {m.vq_emit} frames"
    facts = [("frames", f"F = {d.frame_size} samples ({1000 * d.frame_size / rate:.1f} ms), T = {d.seq_len} frames "
                        f"per sequence ({d.frame_size * d.seq_len / rate:.2f} s)"),
             ("model", f"GRU {m.layers} x {m.hidden}; {esc(mode)}"),
             ("training", f"{t.epochs} epoch{'s' * (t.epochs != 1)} planned, batch {t.batch_size}, lr {t.lr:g}, "
                          f"RNG seed {t.seed}")]
    rows = [r for r in view.rows if r.get("val_mse") is not None]
    if rows:
        last = rows[-1]
        best = min(rows, key=lambda r: r["val_mse"])
        ratio = last["val_mse"] / last["zero_mse"] if last.get("zero_mse") else None
        facts.append(("progress", f"epoch {number(last.get('epoch'))}, step {number(last.get('step'))}, "
                                  f"{number(last.get('seconds'))} s of training"))
        facts.append(("validation", f"last val MSE {number(last['val_mse'])} ({number(ratio)} of the zero predictor's, "
                                    f"SNR {number(last.get('val_snr_db'))} dB); best {number(best['val_mse'])} "
                                    f"at epoch {number(best.get('epoch'))}"))
    return facts


def _config_section(config: dict) -> str:
    groups = []
    flat = []
    for k, v in config.items():
        if isinstance(v, dict):
            groups.append((k, v))
        else:
            flat.append((k, v))
    parts = [f'<h3>{esc(name)}</h3>' + key_values((k, esc(number(v))) for k, v in d.items()) for name, d in groups]
    return (key_values((k, esc(number(v))) for k, v in flat)
            + '<div class="cols">' + "".join(f"<div>{p}</div>" for p in parts) + "</div>")


def _epoch_table(rows: list[dict]) -> str:
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys and k != "sample"]
    head = "".join(f'<th scope="col"><button type="button">{esc(k)}</button></th>' for k in keys)
    body = "".join("<tr>" + "".join(f'<td data-v="{esc(sort_value(r.get(k)))}">{esc(number(r.get(k)))}</td>'
                                    for k in keys) + "</tr>" for r in rows)
    return (f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _definitions(docs: dict) -> str:
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(summary)}{'; ' + esc(more) if more else ''}.</dd>"
                    for k, (summary, more) in docs.items())
    return f'<dl class="defs">{items}</dl>'


def run_page(view: RunView, page_dir: Path, *, embed: bool = False, back_to: Path | None = None) -> str:
    """The run page's HTML; ``page_dir`` is where it will be written (relative links start there); ``back_to``:
    the page of the sweep this run is a trial of."""
    links, ids, docs = Links(page_dir, embed), Ids(), _short_docs()
    name = view.run_dir.resolve().name
    toc = [("summary", "Summary")]
    body = []
    back = ""
    if back_to is not None:
        sweep = view.run_dir.resolve().parent.name
        back = f'<p><a href="{links.href(back_to)}">← sweep {esc(sweep)}</a></p>'
    body.append(f'<header>{back}<h1>Listening report: run {esc(name)}</h1>'
                f'<p class="muted">{esc(view.run_dir)}</p></header>')
    summary = [f'<section id="summary"><h2>Summary</h2>{key_values(_song_facts(view) + _model_facts(view))}']
    best = view.best_generated()
    last = view.last_sample()
    for label, clip in (("best generated clip", best), ("latest sample clip", last)):
        if clip is not None:
            summary.append(f'<div class="pick"><div>{player(clip, links, ids, f"{label}: {clip.title}")}</div>'
                           f'<div class="flags">{flag_badges(clip.flags, clip.note)}</div></div>')
    summary.append("</section>")
    body.append("\n".join(summary))
    if view.missing:
        toc.append(("missing", "What is missing"))
        body.append(missing_section(view.missing))

    toc.append(("training", "Training"))
    if view.training_figure is not None:
        picture = links.image(view.training_figure, "training and validation loss per epoch with the zero and copy "
                                                    "predictors")
        body.append(f'<section id="training"><h2>Training</h2>{picture}<p class="muted">Validation is measured on '
                    f'the held-out tail; the zero predictor (silence) and the copy-previous-frame predictor are '
                    f'scored on the same frames.</p></section>')
    else:
        body.append('<section id="training"><h2>Training</h2><p>No epoch has finished yet.</p></section>')

    toc.append(("generated", f"Generated clips ({len(view.generated)})"))
    gen = ['<section id="generated"><h2>Generated clips</h2>']
    if not view.generated:
        gen.append(f"<p>None yet: <code>framegen generate --run {esc(view.run_dir)} --seconds 30</code></p>")
    for clip in view.generated:
        gen.append(_clip_block(clip, links, ids, docs, "gen-" + anchor(clip.path.stem)))
    gen.append("</section>")
    body.append("\n".join(gen))

    if view.prompt is not None:
        toc.append(("prompt", "Prompt"))
        body.append('<section id="prompt-section"><h2 id="prompt">Prompt</h2><p>What the model hears before it '
                    'continues: the first T frames of the held-out tail, which training never saw (the default '
                    'prompt of <code>framegen generate</code>). The song after it, on the right of the figure, is what '
                    'a perfect continuation would sound like. The prompt is the song itself, so it scores as '
                    '<em>copying</em>; its other metrics show what real audio of this song scores.</p>'
                    + _clip_block(view.prompt, links, ids, docs, "clip-prompt") + "</section>")

    toc.append(("samples", f"Samples by epoch ({len(view.samples)})"))
    smp = ['<section id="samples"><h2>Samples by epoch</h2>']
    if not view.samples:
        smp.append("<p>No sample clips.</p>")
    else:
        smp.append("<p>A clip generated at the end of each sampled epoch, from the same prompt, so one can hear "
                   "training progress from left to right.</p>")
        smp.append('<p><button type="button" class="playall" data-target="timeline">▶ Play all in order</button></p>')
        cards = []
        for clip in view.samples:
            tid = "tl-" + anchor(clip.path.stem)
            cards.append(f'<div class="card"><a href="#smp-{anchor(clip.path.stem)}"><strong id="{tid}">'
                         f'{esc(clip.title)}</strong></a>'
                         f'{facts_line({k: v for k, v in clip.facts.items() if k != "epoch"})}'
                         f'{player(clip, links, ids, labelled_by=tid)}'
                         f'<div class="flags">{flag_badges(clip.flags, clip.note)}</div></div>')
        smp.append(f'<div class="timeline" id="timeline">{"".join(cards)}</div>')
        for clip in view.samples:
            smp.append(_clip_block(clip, links, ids, docs, "smp-" + anchor(clip.path.stem)))
    smp.append("</section>")
    body.append("\n".join(smp))

    if view.rows:
        toc.append(("epochs", "Every epoch's numbers"))
        body.append(f'<section id="epochs"><h2>Every epoch\'s numbers</h2><p class="muted">metrics.jsonl; click a '
                    f'column to sort.</p>{_epoch_table(view.rows)}</section>')
    toc.append(("config", "Configuration"))
    body.append(f'<section id="config"><h2>Configuration</h2><p class="muted">config.json as saved by '
                f'<code>framegen train</code>.</p>{_config_section(view.config)}</section>')
    toc.append(("definitions", "What the metrics mean"))
    body.append(f'<section id="definitions"><h2>What the metrics mean</h2><p class="muted">From '
                f'<code>framegen evaluate --help</code>. Each figure shows a clip\'s log-mel spectrogram over its '
                f'onset envelope, beside the song\'s at the same dB, time and onset scales (0 dB = the song\'s '
                f'loudest cell). A generated clip that played the song\'s own frames also shows its path through '
                f'the song (from the sidecar <code>x.path.npz</code> beside <code>x.wav</code>): output time against '
                f'song time, a line for each stretch played as in the song, a break at each jump, the prompt\'s '
                f'start, the song times it was asked to reach and the held-out part shaded.</p>'
                f'{_definitions(metric_docs())}</section>')
    body.insert(1, contents(toc))
    return document(f"framegen run {name}", "\n".join(body))


# ---------------------------------------------------------------------------------------------------- the sweep page


SWEEP_COLUMNS = (  # (results.json key, heading) after trial, F, T, status, score and the flags; every column sorts
    ("vs_copy", "val / copy"), ("val_snr_db", "SNR dB"), ("val_mse", "val MSE"), ("best_val_mse", "best val MSE"),
    ("train_mse", "train MSE"), ("steps", "steps"), ("samples_seen", "samples seen"), ("epochs", "epochs"),
    ("batch_size", "batch"), ("train_seconds", "train s"), ("compile_seconds", "compile s"),
    ("peak_rss_bytes", "peak RSS MB"),
)
SWEEP_FIRST = (("frame_size", "F"), ("seq_len", "T"), ("tiers", "tiers"), ("status", "status"),
               ("score", "val / zero"))


def sweep_page(sweep_dir: Path, doc: dict, trials: list, missing: list[str], page_dir: Path, *,
               embed: bool = False) -> str:
    """The sweep page's HTML from ``collect_sweep``'s (doc, trials, missing); ``page_dir`` as for ``run_page``."""
    from framegen.sweep import best_trial

    links, ids = Links(page_dir, embed), Ids()
    sweep_dir = Path(sweep_dir)
    name = doc.get("sweep") or sweep_dir.resolve().name
    best = best_trial(doc)
    b = doc.get("budget") or {}
    budget = (f"{int(b['amount']):,} training samples per trial" if b.get("kind") == "samples"
              else f"{b.get('amount', 0):g} s of training per trial")
    rate = doc.get("sample_rate") or 1
    song = doc.get("song", "")
    facts = [("song", f'<span title="{esc(song)}">{esc(Path(song).name)}</span> '
                      f'({(doc.get("song_samples") or 0) / rate:.1f} s at {rate:,} Hz)'),
             ("grid", f"F {', '.join(map(str, doc.get('frame_sizes', [])))} x "
                      f"T {', '.join(map(str, doc.get('seq_lens', [])))}"
                      + (f" x tiers {' / '.join(k or 'flat' for k in doc['tier_sets'])}" if doc.get("tier_sets")
                         else "")),
             ("budget", esc(budget)), ("machine", esc(doc.get("machine", "?"))),
             ("updated", esc(doc.get("updated", "?")))]
    if doc.get("command"):
        facts.append(("command", f"<code>{esc(doc['command'])}</code>"))
    if best:
        facts.append(("best", f'<a href="#trial-{anchor(best["key"])}">{esc(best["key"])}</a> (val / zero '
                              f'{number(best.get("score"))})'))
    toc = [("summary", "Summary")]
    body = [f'<header><h1>Listening report: sweep {esc(name)}</h1><p class="muted">{esc(sweep_dir)}</p></header>',
            f'<section id="summary"><h2>Summary</h2>{key_values(facts)}<p class="muted">Score: validation MSE / '
            f'zero-predictor MSE on the same held-out tail (lower is better; 1 = predicting silence).</p></section>']
    if missing:
        toc.append(("missing", "What is missing"))
        body.append(missing_section(missing))
    heatmap = sweep_dir / "heatmap.png"
    heatmap = heatmap if heatmap.is_file() else sweep_dir / ASSETS_DIR / "heatmap.png"
    if heatmap.is_file():
        toc.append(("heatmap", "Heatmap"))
        picture = links.image(heatmap, "score of each F x T cell", "narrow")
        body.append(f'<section id="heatmap"><h2>Heatmap</h2>{picture}</section>')

    toc.append(("results", "Results table"))
    # the sample scores a sweep records per trial (sample_pulse_ratio, ...), whichever they are
    scores = []
    for r, _ in trials:
        scores += [k for k, v in r.items() if k.startswith("sample_") and k not in scores
                   and (v is None or isinstance(v, (int, float)))]
    columns = [*((k, k.replace("_", " ")) for k in scores), *SWEEP_COLUMNS]
    headings = ["trial", *(h for _, h in SWEEP_FIRST), "sample flags", "clip flags", *(h for _, h in columns)]
    head = "".join(f'<th scope="col"><button type="button">{esc(h)}</button></th>' for h in headings)

    def cell(k, v):
        shown = v / 1e6 if k == "peak_rss_bytes" and isinstance(v, (int, float)) else v
        cls = ' class="num"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
        return f'<td{cls} data-v="{esc(sort_value(v))}">{esc(number(shown))}</td>'

    rows = []
    for r, view in trials:
        key = r.get("key", "?")
        star = ' <span class="flag ok">best</span>' if best is not None and r is best else ""
        cells = [f'<th scope="row" data-v="{esc(key)}"><a href="#trial-{anchor(key)}">{esc(key)}</a>{star}</th>']
        cells += [cell(k, r.get(k)) for k, _ in SWEEP_FIRST]
        for clip in ((view.last_sample() if view else None), (view.best_generated() if view else None)):
            flags = "" if clip is None or clip.flags is None else (", ".join(clip.flags) or "none")
            cells.append(f'<td data-v="{esc(flags)}">{flag_badges(clip.flags, clip.note) if clip else "–"}</td>')
        cells += [cell(k, r.get(k)) for k, _ in columns]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    body.append(f'<section id="results"><h2>Results</h2><p class="muted">Click a column heading to sort; again to '
                f'reverse.</p><div class="scroll"><table class="sortable" id="results-table"><thead><tr>{head}'
                f'</tr></thead><tbody>{"".join(rows)}</tbody></table></div></section>')

    toc.append(("trials", f"Trials ({len(trials)})"))
    cards = ['<section id="trials"><h2>Trials</h2><div class="trials">']
    for r, view in trials:
        key = r.get("key", "?")
        head = f'<h3>{esc(key)} <span class="muted">{esc(r.get("status", "?"))}</span></h3>'
        if view is not None:
            head = (f'<h3><a href="{links.href(view.run_dir / REPORT_FILE)}">{esc(key)}</a> '
                    f'<span class="muted">{esc(r.get("status", "?"))}</span></h3>')
        parts = [f'<div class="card" id="trial-{anchor(key)}">{head}']
        if r.get("status") == "done":
            snr = r.get("val_snr_db")
            snr = f"{snr:+.2f}" if isinstance(snr, (int, float)) else "–"
            parts.append(f'<p class="muted">val / zero {number(r.get("score"))} · SNR {snr} dB · '
                         f'{number(r.get("steps"))} steps</p>')
        if r.get("error") or r.get("reason"):
            parts.append(f'<p class="gone">{esc(r.get("error") or r.get("reason"))}</p>')
        if view is not None:
            for label, clip in (("sample", view.last_sample()), ("generated", view.best_generated())):
                if clip is None:
                    parts.append(f'<p class="muted">no {label} clip</p>')
                    continue
                parts.append(player(clip, links, ids, clip.title if label == "sample" else f"{label}: {clip.title}"))
                parts.append(f'<div class="flags">{flag_badges(clip.flags, clip.note)}</div>')
            parts.append(f'<p><a href="{links.href(view.run_dir / REPORT_FILE)}">run page →</a></p>')
        parts.append("</div>")
        cards.append("".join(parts))
    cards.append("</div></section>")
    body.append("\n".join(cards))
    body.insert(1, contents(toc))
    return document(f"framegen sweep {name}", "\n".join(body))
