"""framegen.report.html: the blocks both report pages are built of, each checked on the string it returns."""

import base64
import re

import pytest

from framegen import __version__
from framegen.report import Clip
from framegen.report.html import (Ids, Links, anchor, contents, document, esc, facts_line, flag_badges, key_values,
                                  metric_list, missing_section, number, player, sort_value)


def test_esc_makes_text_safe_in_elements_and_attributes():
    assert esc('<a href="x">R&B\'s</a>') == "&lt;a href=&quot;x&quot;&gt;R&amp;B&#x27;s&lt;/a&gt;"
    assert esc(3) == "3"


def test_anchor_is_an_id_made_of_the_text():
    assert anchor("Epoch-003 Sample!") == "epoch-003-sample"
    assert anchor("!!!") == "x"


@pytest.mark.parametrize("value, shown", [
    (None, "–"), (True, "yes"), (False, "no"), (1234567, "1,234,567"), (0.0, "0"), (0.000123456, "0.0001235"),
    (2.5, "2.5"), (float("nan"), "nan"), (float("inf"), "inf"), ([], "–"), (["a", 2], "a, 2"), ("text", "text"),
])
def test_number_shows_four_significant_digits_and_words_for_the_rest(value, shown):
    assert number(value) == shown


def test_sort_value_keeps_full_precision_and_sorts_none_apart():
    assert sort_value(0.123456789) == "0.123456789" and sort_value(12) == "12" and sort_value(True) == "1"
    assert sort_value(None) == sort_value(float("nan")) == ""
    assert sort_value("f40-t50") == "f40-t50"


def test_flag_badges_colour_a_collapse_red_and_other_flags_amber():
    assert flag_badges(None, "too short") == '<span class="flag none">too short</span>'
    assert flag_badges(None) == '<span class="flag none">not scored</span>'
    assert flag_badges(()) == '<span class="flag ok">no flags</span>'
    assert flag_badges(["stuck", "far_from_song"]) == ('<span class="flag bad">stuck</span>'
                                                       '<span class="flag warn">far_from_song</span>')


def test_metric_list_shows_each_metric_with_its_meaning_as_tooltip():
    text = metric_list({"rms": 0.25, "new<metric>": 3}, {"rms": "loudness"})
    assert '<span class="k" title="loudness">rms</span> <span class="v">0.25</span>' in text
    assert '<span class="k">new&lt;metric&gt;</span> <span class="v">3</span>' in text
    assert metric_list(None, {}) == metric_list({}, {}) == ""


def test_facts_line_leaves_unknown_facts_out():
    assert facts_line({"epoch": 3, "val MSE": None, "partial": True}) == '<p class="muted">epoch 3 · partial yes</p>'
    assert facts_line({"val MSE": None}) == ""


def test_links_are_relative_to_the_page_or_inlined(tmp_path):
    wav = tmp_path / "run" / "my clips" / "a b.wav"
    wav.parent.mkdir(parents=True)
    wav.write_bytes(b"RIFF")
    page = Links(tmp_path / "pages", embed=False)
    assert page.src(wav) == page.href(wav) == "../run/my%20clips/a%20b.wav"
    assert page.image(wav, "a <b>") == ('<a href="../run/my%20clips/a%20b.wav"><img src="../run/my%20clips/a%20b.wav"'
                                        ' alt="a &lt;b&gt;"></a>')
    mail = Links(tmp_path / "pages", embed=True)
    assert mail.src(wav) == "data:audio/wav;base64," + base64.b64encode(b"RIFF").decode()
    assert mail.image(wav, "x", "narrow").startswith('<img class="narrow" src="data:audio/wav;base64,')


def test_players_are_labelled_and_a_missing_clip_says_why(tmp_path):
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"RIFF")
    links, ids = Links(tmp_path, embed=False), Ids()
    clip = Clip("generated", "a & b", wav, seconds=2.04)
    first, second = player(clip, links, ids), player(clip, links, ids, label="best")
    assert re.findall(r'id="(p\d)"', first + second) == ["p1", "p2"]  # one page, fresh ids
    assert '<figcaption id="p1">a &amp; b <span class="muted">· 2.0 s</span></figcaption>' in first
    assert 'aria-labelledby="p1" src="a.wav"' in first and '>best <span' in second
    assert player(clip, links, ids, labelled_by="h3") == ('<figure class="player"><audio controls preload="metadata" '
                                                          'aria-labelledby="h3" src="a.wav"></audio></figure>')
    gone = Clip("sample", "epoch 2 sample", tmp_path / "gone.wav", note="samples/gone.wav is missing")
    assert player(gone, links, ids) == '<p class="gone">epoch 2 sample: samples/gone.wav is missing</p>'


def test_key_values_escape_names_and_keep_html_values():
    assert key_values([("a<b", "<code>x</code>")]) == '<dl class="kv"><dt>a&lt;b</dt><dd><code>x</code></dd></dl>'


def test_missing_section_and_contents():
    assert missing_section([]) == ""
    assert missing_section(["no song"]) == ('<section class="missing" id="missing"><h2>What is missing</h2>'
                                            '<ul><li>no song</li></ul></section>')
    assert '<li><a href="#summary">Summary &amp; more</a></li>' in contents([("summary", "Summary & more")])


def test_document_is_a_whole_page_around_the_body():
    text = document("run <x>", "<p>body</p>")
    assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")
    assert "<title>run &lt;x&gt;</title>" in text and "<main>\n<p>body</p>\n<footer" in text
    assert f'content="framegen {__version__}"' in text and "<style>" in text and "<script>" in text
    assert "http://" not in text and "https://" not in text
