"""Reusable pieces every chapter uses.

    TokenStrip        the learner's text as coloured tokens; hover: id and bytes; click: select
    prob_bars         probability bars (Altair); hover: exact probability; chosen token highlighted
    attention_heatmap an attention pattern (Altair); hover: query, key, weight
    matrix_heatmap    any 2-D tensor as a heatmap with row/column labels
    code_panel        the real source of a library function, syntax-highlighted, with its file
    quiz / quiz_feedback   multiple choice with instant feedback, answers saved in SQLite
"""

from glassformer.course.widgets.charts import attention_heatmap, line_chart, matrix_heatmap, prob_bars
from glassformer.course.widgets.code import code_panel
from glassformer.course.widgets.quiz import Question, quiz, quiz_feedback
from glassformer.course.widgets.tokens import TokenStrip, token_label, token_rows
from glassformer.course.widgets.drag import DragVectors  # 2-D arrows the learner drags (see drag.py)

__all__ = ["TokenStrip", "token_rows", "token_label", "prob_bars", "attention_heatmap", "matrix_heatmap",
           "line_chart", "code_panel", "Question", "quiz", "quiz_feedback", "DragVectors"]
