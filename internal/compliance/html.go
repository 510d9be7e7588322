package compliance

import (
	"html/template"
	"io"
	"time"
)

// page is the printable report: one self-contained HTML document (no
// script, no external resource), with print CSS that keeps a clause's
// row on one page and repeats the table header.
var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Ward compliance report {{when .Generated}}</title>
<style>
body{font:10pt/1.35 system-ui,sans-serif;margin:1.5cm;color:#111}
h1{font-size:16pt;margin:0 0 .3em}h2{font-size:12pt;margin:1.2em 0 .4em}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #999;padding:3px 5px;vertical-align:top;text-align:left}
thead{display:table-header-group}tr{page-break-inside:avoid}
.met{background:#e6f4e6}.met-with-condition{background:#fff6d6}.not-met{background:#fbe0e0}.operator{background:#eceff5}
.st{font-weight:bold;white-space:nowrap}.small{font-size:8.5pt;color:#333}code{font-size:8.5pt}
.bad{color:#a00;font-weight:bold}
@page{size:A4 landscape;margin:1.2cm}@media print{body{margin:0}}
</style></head><body>
<h1>Ward compliance report</h1>
<p>Generated {{when .Generated}} by Ward {{.Ward.Version}}, commit <code>{{.Ward.Revision}}</code>{{if .Ward.Modified}} (modified working tree){{end}}{{if .Ward.GoVersion}}, {{.Ward.GoVersion}}{{end}}.
Test results: {{if .TestsFrom}}{{.TestsFrom}}{{if .TestsCommit}}, run at commit <code>{{.TestsCommit}}</code>{{end}}{{else}}none given (tests are named, not run){{end}}.
Format {{.Format}}; the JSON form of this report and its detached signature are what an auditor verifies (<code>ward compliance verify</code>).</p>
<p>Summary: {{range $k, $v := .Summary}}{{$k}} {{$v}}; {{end}}</p>
<h2>Live configuration</h2>
<table><thead><tr><th>fact</th><th>value</th><th>holds</th><th>note</th></tr></thead><tbody>
{{range .Facts}}<tr><td>{{.Name}}</td><td>{{.Value}}</td><td>{{if .OK}}yes{{else}}<span class="bad">no</span>{{end}}</td><td class="small">{{.Note}}</td></tr>
{{end}}</tbody></table>
<h2>Clauses</h2>
<table><thead><tr><th>regulation</th><th>clause</th><th>Ward feature</th><th>evidence</th><th>tests</th><th>status</th></tr></thead><tbody>
{{range .Clauses}}<tr class="{{.Status}}"><td>{{.Regulation}}</td><td><b>{{.ID}}</b><br>{{.Title}}</td><td>{{.Feature}}</td>
<td class="small">{{range .Evidence}}{{.Name}}: {{.Value}}{{if not .OK}} <span class="bad">(does not hold)</span>{{end}}<br>{{end}}</td>
<td class="small">{{range .Tests}}<code>{{.Name}}</code> {{if eq .Result "failed"}}<span class="bad">{{.Result}}</span>{{else}}{{.Result}}{{end}}<br>{{end}}</td>
<td><span class="st">{{.Status}}</span>{{if .Condition}}<br><span class="small">condition: {{.Condition}}</span>{{end}}{{if .Missing}}<br><span class="small bad">missing: {{.Missing}}</span>{{end}}</td></tr>
{{end}}</tbody></table>
{{if .Access}}<h2>Access confirmations overdue</h2>
<table><thead><tr><th>kind</th><th>id</th><th>name</th><th>role or scopes</th><th>last confirmed</th><th>due</th></tr></thead><tbody>
{{range .Access}}<tr><td>{{.Kind}}</td><td><code>{{.ID}}</code></td><td>{{.Name}}</td><td>{{.Role}}{{range .Scopes}} {{.}}{{end}}</td><td>{{if .Confirmed}}{{when .Confirmed.At}}{{else}}never{{end}}</td><td>{{when .Due}}</td></tr>
{{end}}</tbody></table>{{end}}
</body></html>
`))

// WriteHTML writes the report as a self-contained, printable HTML page.
func (r *Report) WriteHTML(w io.Writer) error { return page.Execute(w, r) }
