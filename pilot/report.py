"""Markdown rendering of a pilot readout."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pilot.readout import Readout


def _ci(low: float, high: float, percent: bool) -> str:
    if percent:
        return f"[{low:+.2%}, {high:+.2%}]"
    return f"[{low:+.4g}, {high:+.4g}]"


def render_markdown(readout: Readout) -> str:
    """Render the readout as a Markdown report, marking a peek in the title and every table."""
    peek = readout.status == "peek"
    mark = " (PEEK: not a decision)" if peek else ""
    lines = [
        f"# Pilot readout: {readout.plan_name}{mark}",
        "",
        f"- Data through: {readout.as_of}; day {readout.days_observed} of {readout.planned_days} "
        "planned",
        "- Users: "
        + ", ".join(
            f"{name} {count:,} of {readout.planned_users[name]:,} planned"
            for name, count in readout.users.items()
        ),
        f"- Status: **{readout.status}**",
        f"- Decision: **{readout.decision}**",
    ]
    lines += [f"  - {reason}" for reason in readout.reasons]
    lines += ["", "## Data checks", ""]
    lines += [f"- {line}" for line in readout.checks.lines()]

    srm = readout.srm
    lines += [
        "",
        "## Sample ratio mismatch",
        "",
        f"Users per variant: {srm['counts']} against shares {srm['expected_shares']}; "
        f"chi-square {srm['chi_square']:.3f}, p = {srm['p_value']:.3g} "
        f"({'MISMATCH' if srm['mismatch'] else 'no mismatch'} at alpha {srm['alpha']:g}).",
        "",
        "| dimension | value | counts | chi-square | p-value | flagged |",
        "|---|---|---|---:|---:|---|",
    ]
    for row in srm["breakdown"]:
        counts = ", ".join(f"{name} {count:,}" for name, count in row["counts"].items())
        lines.append(
            f"| {row['dimension']} | {row['value']} | {counts} | {row['chi_square']:.2f} | "
            f"{row['p_value']:.3g} | {'yes' if row['flagged'] else ''} |"
        )

    lines += ["", f"## Primary metric{mark}", ""]
    if readout.primary is None:
        lines.append("Not enough users in an arm to estimate the primary metric.")
    else:
        lines += _effect_table([readout.primary], readout.alpha, holm=False)
    if readout.secondary:
        lines += ["", f"## Secondary metrics (Holm-adjusted){mark}", ""]
        lines += _effect_table(readout.secondary, readout.alpha, holm=True)
    if readout.guardrails:
        lines += [
            "",
            f"## Guardrails: one-sided non-inferiority{mark}",
            "",
            "| metric | control | treatment | change | margin | one-sided bound | p-value | "
            "passed |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for row in readout.guardrails:
            if "estimate" not in row:
                lines.append(f"| {row['metric']} | | | | | | | no ({row['note']}) |")
                continue
            relative = row["margin_type"] == "relative"
            change = f"{row['estimate']:+.2%}" if relative else f"{row['estimate']:+.4g}"
            bound = f"{row['bound']:+.2%}" if relative else f"{row['bound']:+.4g}"
            sign = "-" if row["higher_is_better"] else "+"
            margin = f"{sign}{row['margin']:.1%}" if relative else f"{sign}{row['margin']:g}"
            lines.append(
                f"| {row['metric']} | {row['control']:.4g} | {row['treatment']:.4g} | {change} | "
                f"{margin} | {bound} | {row['p_value']:.3g} | {'yes' if row['passed'] else 'NO'} |"
            )
    if readout.rollback:
        lines += ["", "## Rollback criteria", ""]
        for row in readout.rollback:
            scale = "relative" if row["threshold_type"] == "relative" else "absolute"
            if not row["checked"]:
                state = f"not checked ({row['note']})"
            elif row["triggered"]:
                state = "TRIGGERED"
            else:
                state = "ok"
            bound = row.get("degradation_lower_bound")
            bound_text = f", degradation lower bound {bound:+.4g}" if bound is not None else ""
            lines.append(
                f"- {row['metric']}: worse by more than {row['threshold']:g} ({scale}) at "
                f"one-sided alpha {row['alpha']:g}: {state}{bound_text}"
            )
    lines += [
        "",
        "## Attribution",
        "",
        f"- {readout.attribution[0].upper()}{readout.attribution[1:]}.",
    ]
    lines += ["", "## CUPED", "", f"- {readout.cuped[0].upper()}{readout.cuped[1:]}."]
    adjusted = [
        row
        for row in [readout.primary, *readout.secondary, *readout.guardrails]
        if row and row.get("cuped")
    ]
    for row in adjusted:
        info = row["cuped"]
        reduction = info.get("variance_reduction", 0.0)
        lines.append(
            f"- {row['metric']}: theta {info['theta']:.4g}, correlation with the pre-period "
            f"{info['correlation']:.3f}, variance reduced by {reduction:.1%}"
            f", {info['users_with_pre_period']:,} of {info['users']:,} users with pre-period data"
        )
    lines += ["", "## Multiple-testing policy", ""]
    lines += [f"- {line}" for line in readout.policy]
    return "\n".join(lines) + "\n"


def _effect_table(rows: list[dict], alpha: float, holm: bool) -> list[str]:
    level = f"{1 - alpha:.0%} CI"
    header = f"| metric | control | treatment | absolute ({level}) | relative ({level}) | p-value |"
    rule = "|---|---:|---:|---:|---:|---:|"
    if holm:
        header += " Holm p-value |"
        rule += "---:|"
    lines = [header, rule]
    for row in rows:
        if row.get("note"):
            columns = "| | | | |" + (" |" if holm else "")
            lines.append(f"| {row['metric']} ({row['unit']}) | {row['note']} {columns}")
            continue
        low, high = row["absolute_ci"]
        rel_low, rel_high = row["relative_ci"]
        line = (
            f"| {row['metric']} ({row['unit']}) | {row['control']:.4g} | {row['treatment']:.4g} | "
            f"{row['absolute']:+.4g} {_ci(low, high, False)} | "
            f"{row['relative']:+.2%} {_ci(rel_low, rel_high, True)} | {row['p_value']:.3g} |"
        )
        if holm:
            line += f" {row['p_holm']:.3g} |"
        lines.append(line)
    return lines
