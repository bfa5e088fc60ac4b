"""Building blocks of the Crowsnest Grafana dashboards: grid layout, targets, panels, query
variables and the dashboard envelope, in Grafana's dashboard JSON model (schemaVersion 39,
https://grafana.com/docs/grafana/latest/dashboards/build-dashboards/view-dashboard-json-model/).
Used by generate.py; Python 3 standard library only.
"""

SCHEMA_VERSION = 39
# The provisioned data source (provisioning/datasources/crowsnest.yml).
DS = {"type": "prometheus", "uid": "crowsnest"}


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping to new rows."""

    def __init__(self):
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def place(self, w, h):
        if self.x + w > 24:
            self.newline()
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def newline(self):
        if self.x > 0:
            self.y += self.row_h
        self.x = 0
        self.row_h = 0

    def pid(self):
        i = self.next_id
        self.next_id += 1
        return i


def target(expr, legend="", ref="A", instant=False, fmt="time_series"):
    t = {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "refId": ref,
    }
    if fmt != "time_series":
        t["format"] = fmt
    return t


def targets(*pairs, instant=False, fmt="time_series"):
    """`pairs` are (expr, legend) tuples; refIds are A, B, C..."""
    return [
        target(e, l, chr(ord("A") + i), instant=instant, fmt=fmt) for i, (e, l) in enumerate(pairs)
    ]


def panel(lay, kind, title, description, tgts, w=12, h=8, unit="short", options=None, custom=None, **extra):
    assert description.strip(), f"panel {title!r} needs a description"
    p = {
        "id": lay.pid(),
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": lay.place(w, h),
        "targets": tgts,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": options or {},
    }
    if custom:
        p["fieldConfig"]["defaults"]["custom"] = custom
    p["fieldConfig"]["defaults"].update(extra.pop("defaults", {}))
    p.update(extra)
    return p


def timeseries(lay, title, description, tgts, unit="short", stack=False, bars=False, **kw):
    custom = {
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 60 if bars else 10,
        "lineWidth": 1,
        "showPoints": "never",
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
    }
    opts = {
        "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return panel(lay, "timeseries", title, description, tgts, unit=unit, options=opts, custom=custom, **kw)


def stat(lay, title, description, expr, unit="short", w=4, h=4, thresholds=None, legend=""):
    steps = [{"color": "green", "value": None}] + [
        {"color": c, "value": v} for v, c in (thresholds or [])
    ]
    return panel(
        lay,
        "stat",
        title,
        description,
        [target(expr, legend, instant=True)],
        w=w,
        h=h,
        unit=unit,
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "none",
            "textMode": "auto",
        },
        defaults={"thresholds": {"mode": "absolute", "steps": steps}},
    )


def table(lay, title, description, tgts, unit="short", w=12, h=8):
    return panel(
        lay,
        "table",
        title,
        description,
        tgts,
        w=w,
        h=h,
        unit=unit,
        options={"showHeader": True, "cellHeight": "sm"},
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True}}},
        ],
    )


def timeline(lay, title, description, tgts, mappings, w=24, h=8):
    return panel(
        lay,
        "state-timeline",
        title,
        description,
        tgts,
        w=w,
        h=h,
        options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8},
        defaults={"mappings": mappings, "color": {"mode": "thresholds"}},
    )


def row(lay, title):
    lay.newline()
    p = {
        "id": lay.pid(),
        "type": "row",
        "title": title,
        "collapsed": False,
        "panels": [],
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": lay.y},
    }
    lay.y += 1
    return p


def var(name, label, query, multi=True, description=""):
    """A query variable: `label_values(selector, label)`, resolved through /api/v1/series or
    /api/v1/label/<label>/values by Grafana."""
    return {
        "type": "query",
        "name": name,
        "label": label,
        "description": description or label,
        "datasource": DS,
        "definition": query,
        # The classic string form: Grafana parses it itself (variableMigration.ts); the object
        # form would also need the editor's split-out `metric`/`label` fields to run.
        "query": query,
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "regex": "",
        "hide": 0,
    }


def dashboard(uid, title, description, variables, panels, annotations=(), tags=()):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["crowsnest", *tags],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [
            {
                "type": "dashboards",
                "title": "Crowsnest",
                "tags": ["crowsnest"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                },
                *annotations,
            ]
        },
        "templating": {"list": variables},
        "panels": panels,
    }


STATE_MAP = [
    {"type": "value", "options": {"0": {"text": "down", "color": "red"}, "1": {"text": "up", "color": "green"}}}
]
