"""Model internals lab: real weights (all-MiniLM-L6-v2, SmolLM2-135M) seen from the inside."""
import streamlit as st

from explorer.labs.internals import MAX_TOKENS, TEXT_MAX_CHARS, InternalsSettings
from explorer.labs.internals_facts import head_statistics, smollm2_weights_note, smollm2_weights_short
from explorer.labs.internals_passes import DEFAULT_COMPARE, is_decoder
from explorer.ui.common import chart, page_header, presenting, show_outcome
from explorer.ui.i18n import lang, say, tr
from explorer.ui.internals import (
    VIEW, ablation_picker, compare_box, fit_to_model, head_view_controls, layer_head_pickers, outcome, query_picker,
    statistic_picker, summary_key,
)
from explorer.ui.models import get_model, model_picker
from explorer.ui.training import TRAINED, internals_models, my_trained_model
from explorer.ui.token_chips import token_chips
from explorer.ui.url_state import link_and_reset, show_problems
from explorer.viz.internals import (
    ablation_bars, head_summary_figure, head_view_figure, layer_heads_figure, logit_lens_figure, pattern_change_figure,
    residual_mean_figure, residual_norm_figure, zoom_figure,
)

page_header(tr("internals.title"), tr("internals.intro"), tr("internals.course_section"))
show_problems(VIEW.open())
with st.sidebar:
    link_and_reset(VIEW)

# ---- model and text ---------------------------------------------------------------------------------------------
pick, write = st.columns([1, 3])
with pick:
    names = internals_models()  # with "my trained model" once the training lab made one in this session
    VIEW.keep_valid("model", lambda n: n in names, InternalsSettings().model)
    name = model_picker(VIEW.key("model"), names)
pm = my_trained_model() if name == TRAINED else get_model(name)
decoder = is_decoder(pm)
cfg = pm.config
L, H = cfg.n_layer, cfg.n_head
fit_to_model(name, L, H)
with write:
    text = st.text_area(tr("internals.text"), key=VIEW.key("text"), max_chars=TEXT_MAX_CHARS, height=68)
with pick:
    chat = st.toggle(tr("internals.chat"), key=VIEW.key("chat"), help=tr("internals.chat_help")) \
        if pm.supports_chat else False
n_params = sum(p.numel() for p in pm.model.parameters())
about, details = st.columns([3, 1])
about.caption(tr("training.mine.internals_caption", title=say(pm.title), params=n_params) if name == TRAINED else
              tr(f"internals.models.caption.{name}", n_layer=L, n_head=H, n_kv_head=cfg.n_kv_head, d_model=cfg.d_model,
                 params=n_params / 1e6, weights=say(smollm2_weights_short()) if name == "smollm2-135m" else ""))
with details.expander(tr("internals.about_models")):
    st.markdown(tr("internals.about_models_text"))
    st.caption(tr("internals.models.config", kind=cfg.attention_kind, norm=f"{cfg.norm_position}-{cfg.norm}",
                  positional=cfg.positional, activation=cfg.activation))
    if name == "smollm2-135m":
        st.caption(say(smollm2_weights_note()))
top = st.container()  # the outcome's messages and the tokens, once the controls below are read
tab_grid, tab_view, tab_ablate, tab_lens, tab_resid = st.tabs(
    [tr("internals.tab.heads"), tr("internals.tab.view"), tr("internals.tab.ablate"), tr("internals.tab.lens"),
     tr("internals.tab.resid")])

# ---- the controls, tab by tab -----------------------------------------------------------------------------------
with tab_grid:
    summary_slot = st.container()  # the first chart, right under the tabs; its controls below it
    c1, c2 = st.columns([3, 2])
    with c1:
        stat = statistic_picker()
    with c2.expander(tr("internals.heads_howto")):
        st.markdown(tr("internals.heads_explained", n_layer=L, n_head=H))
        st.latex(r"\text{head}_i = \mathrm{softmax}\!\left(\frac{Q W_i^Q (K W_i^K)^\top}{\sqrt{d_k}} + M\right)"
                 r" V W_i^V")
        st.markdown(tr("internals.entropy_explained"))
        st.latex(r"H_i = -\sum_j a_{ij} \log a_{ij},\qquad \tilde H = \frac{1}{|I|}\sum_{i \in I} "
                 r"\frac{H_i}{\log n_i},\quad I = \{i : n_i > 1\}")
        st.caption(tr("internals.entropy_keys"))
    layer, head = layer_head_pickers(name, L, H)
with tab_view:
    st.caption(tr("internals.view_explained"))
    view_layer, view_heads, min_weight = head_view_controls(L, H)
with tab_ablate:
    st.caption(tr("internals.ablate_explained"))
    st.latex(r"\mathrm{MultiHead}(Q,K,V) = \mathrm{Concat}(\text{head}_1, \dots, \underbrace{0}_{\text{head}_i}, "
             r"\dots, \text{head}_h)\,W^O")
    ablated = ablation_picker(L, H)
    compare = DEFAULT_COMPARE
    if not decoder:
        compare = compare_box()
        st.latex(r"e = \frac{\bar h}{\lVert \bar h \rVert},\quad \bar h = \frac{1}{T}\sum_t h_t,\qquad "
                 r"\cos(e, e') = e \cdot e'")
    else:
        st.latex(r"p(x_{T+1} \mid x_{\le T}) = \mathrm{softmax}(h_T W_U),\qquad "
                 r"\mathrm{KL}(p \,\Vert\, p') = \sum_x p(x) \log \frac{p(x)}{p'(x)}")

shown = outcome(pm, InternalsSettings(model=name, text=text, chat=chat, layer=layer, head=head,
                                      view_layer=view_layer, view_heads=view_heads, min_weight=min_weight,
                                      ablated=ablated, compare=compare))
settings, result = shown.settings, shown.result
analysis, labels, norm_facts = result.analysis, result.tokens.labels, result.norm_facts

with top:
    show_outcome(shown)
    if result.tokens.truncated:
        st.warning(tr("internals.truncated_decoder" if decoder else "internals.truncated_encoder",
                      n=result.tokens.n_original, max_tokens=MAX_TOKENS, n_layer=L, n_head=H))
    st.markdown(tr("internals.tokens", chips=token_chips(labels), n=len(labels), max_tokens=MAX_TOKENS))

# ---- every head: the summary, one layer's heads, one head ---------------------------------------------------------
with summary_slot:
    stats = head_statistics(analysis.patterns, result.entropy)
    chart(head_summary_figure(stats[stat], stat, analysis.patterns, labels, result.entropy, lang(),
                              selected=(settings.layer, settings.head), causal=decoder),
          summary_key(name), on_select="rerun", selection_mode="points")
with tab_grid:
    chart(layer_heads_figure(analysis.patterns[settings.layer], labels, settings.layer, lang(),
                             selected=settings.head, cols=3 if presenting() or H <= 9 else 4),
          f"layer_heads_{name}")
    st.subheader(tr("internals.zoom", layer=settings.layer, head=settings.head))
    chart(zoom_figure(analysis.patterns[settings.layer, settings.head], labels, settings.layer, settings.head,
                      lang()), f"zoom_{name}")
    if norm_facts is not None and norm_facts.sink_heads:
        st.caption(tr("internals.sink_caption", sink_heads=norm_facts.sink_heads, n_heads=norm_facts.n_heads,
                      token=norm_facts.token, label=norm_facts.label))
    else:
        st.caption(tr("internals.bert_caption"))

# ---- head view --------------------------------------------------------------------------------------------------
with tab_view:
    query = query_picker(labels)
    VIEW.publish()  # after the last control
    if not settings.view_heads:
        st.caption(tr("internals.pick_a_head"))
    else:
        chart(head_view_figure(result.lines, labels, settings.view_heads, settings.view_layer, settings.min_weight,
                               lang(), query), f"view_{name}")

# ---- ablation -----------------------------------------------------------------------------------------------------
with tab_ablate:
    ab = result.ablation
    if not ab.heads:
        st.caption(tr("internals.nothing_zeroed"))
    c1, c2 = st.columns([1, 3])
    c1.metric(say(ab.metric_name), f"{ab.metric:.4f}")
    c2.markdown(say(ab.summary))
    chart(ablation_bars(ab, lang()), f"ablation_bars_{name}")
    st.markdown(tr("internals.change_explained"))
    chart(pattern_change_figure(ab, lang()), f"ablation_change_{name}")

# ---- logit lens -------------------------------------------------------------------------------------------------
with tab_lens:
    if not decoder:
        st.info(tr("internals.lens_needs_decoder"))
    else:
        st.markdown(tr("internals.lens_explained"))
        st.latex(r"p_l = \mathrm{softmax}\big(\mathrm{RMSNorm}(h_l)\, W_E^\top\big)")
        chart(logit_lens_figure(result.lens, labels, lang()), f"lens_{name}")
        st.caption(say(result.lens_facts.text))

# ---- residual stream --------------------------------------------------------------------------------------------
with tab_resid:
    st.markdown(tr("internals.resid_explained"))
    if decoder:
        st.latex(r"h_{l+1} = h_l + \mathrm{Attn}(\mathrm{RMSNorm}(h_l)) + "
                 r"\mathrm{FFN}(\mathrm{RMSNorm}(h_l + \mathrm{Attn}(\cdot)))")
    else:
        st.latex(r"x' = \mathrm{LayerNorm}(x + \mathrm{Sublayer}(x))")
        st.caption(tr("internals.post_norm_caption"))
    chart(residual_mean_figure(result.norms, labels, lang()), f"resid_line_{name}")
    chart(residual_norm_figure(result.norms, labels, lang()), f"resid_map_{name}")
    if norm_facts is not None:
        st.caption(say(norm_facts.text))
