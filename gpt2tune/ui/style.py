"""The app's look: a theme, a header and a little CSS for the summary tiles and the progress bar."""

from __future__ import annotations

import gradio as gr

HEADER = """
<div class="app-header">
  <div class="app-title"><span class="logo">◆</span> gpt2tune</div>
  <div class="app-tagline">Fine-tune GPT-2 on your own questions and answers, try it, publish it.</div>
  <div class="app-steps">Data → Checks → Train → Generate → Hub</div>
</div>
"""


def theme() -> gr.themes.Base:
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="slate", neutral_hue="slate")


CSS = """
.gradio-container { width: 100% !important; max-width: 1320px !important; margin: 0 auto !important; }
.app-header { padding: 18px 22px; margin-bottom: 6px; border-radius: 14px; color: white;
  background: linear-gradient(120deg, #4338ca 0%, #6366f1 55%, #8b5cf6 100%); }
.app-header, .app-header * { color: white !important; }
.app-title { font-size: 1.7rem; font-weight: 700; letter-spacing: -0.01em; }
.app-title .logo { opacity: .85; margin-right: 4px; }
.app-tagline { font-size: 1rem; opacity: .92; margin-top: 2px; }
.app-steps { font-size: .82rem; opacity: .8; margin-top: 8px; letter-spacing: .02em; }
.tab-intro { color: var(--body-text-color-subdued); margin-bottom: 4px; }
.group-title { padding: 6px 10px 0 10px; }
.section-title h3 { margin-top: 0; }

.stat-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; }
.stat-grid.placeholder { display: block; padding: 18px; border: 1px dashed var(--border-color-primary);
  border-radius: 12px; color: var(--body-text-color-subdued); text-align: center; }
.stat { padding: 10px 14px; border-radius: 12px; background: var(--block-background-fill);
  border: 1px solid var(--border-color-primary); border-left: 4px solid #a5b4fc; }
.stat.good { border-left-color: #22c55e; }
.stat.warn { border-left-color: #f97316; }
.stat-label { font-size: .75rem; text-transform: uppercase; letter-spacing: .05em;
  color: var(--body-text-color-subdued); }
.stat-value { font-size: 1.45rem; font-weight: 650; line-height: 1.3; }
.stat-note { font-size: .78rem; color: var(--body-text-color-subdued); overflow-wrap: anywhere; }
.summary ul { margin-top: 4px; }
.verdict { margin-top: 10px; padding: 10px 14px; border-radius: 12px; font-size: .9rem;
  background: var(--block-background-fill); border: 1px solid var(--border-color-primary); }

.run-status { padding: 12px 16px; border-radius: 12px; border: 1px solid var(--border-color-primary);
  background: var(--block-background-fill); }
.status-head { display: flex; align-items: center; gap: 10px; margin-bottom: 8px; }
.run-name { font-family: var(--font-mono); font-size: .9rem; color: var(--body-text-color-subdued); }
.status-text { font-size: .92rem; margin-top: 6px; font-variant-numeric: tabular-nums; }
.run-status.failed .status-text { color: #dc2626; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: .78rem; font-weight: 600;
  color: white; background: #64748b; }
.badge.running { background: #6366f1; } .badge.stopping { background: #f59e0b; }
.badge.finished { background: #16a34a; } .badge.stopped { background: #0891b2; }
.badge.failed { background: #dc2626; } .badge.idle { background: #94a3b8; }
.badge.interrupted { background: #b45309; }
.message-line:not(:has(.alert-line)) { display: none; }  /* no message: no gap under the control */
.alert-line { padding: 8px 12px; border-radius: 10px; border: 1px solid #f97316; background: #fff7ed;
  color: #9a3412; font-size: .9rem; overflow-wrap: anywhere; }
.run-status.idle .status-text { display: inline; margin-left: 8px; }
.progress { height: 10px; border-radius: 999px; background: var(--border-color-primary); overflow: hidden; }
.progress-fill { height: 100%; border-radius: 999px; background: linear-gradient(90deg, #6366f1, #8b5cf6);
  transition: width .4s ease; }
.progress.finished .progress-fill { background: #16a34a; }
.progress.failed .progress-fill { background: #dc2626; }
.progress.indeterminate .progress-fill { width: 30% !important; animation: slide 1.2s ease-in-out infinite; }
@keyframes slide { from { margin-left: -30%; } to { margin-left: 100%; } }

/* A loss series with one point (one eval so far) is a line of zero length: round caps draw it as a dot,
   unclipped, so that a point on the plot's edge (the last step) shows whole. */
#loss-plot .mark-line path, #runs-curves .mark-line path { stroke-linecap: round; }
#loss-plot .mark-line path:not([d*="L"]), #runs-curves .mark-line path:not([d*="L"]) { stroke-width: 8px; }
#loss-plot .mark-line, #runs-curves .mark-line, #loss-plot .mark-line *, #runs-curves .mark-line * {
  clip-path: none !important; }
/* Table headers wrap between words, never inside one. */
#runs-table th, #runs-table th * { word-break: normal !important; overflow-wrap: normal !important; hyphens: none; }

/* A phone: the run's buttons and status first, its settings below them. */
@media (max-width: 767px) {
  #train-run { order: -1; }
  #train-row { flex-wrap: wrap; }
}
"""
