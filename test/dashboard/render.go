package main

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/athenz-injector/athenz-injector/internal/promlite"
)

// dashboard is the part of Grafana's dashboard model that is drawn.
type dashboard struct {
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Title   string `json:"title"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
}

// Grafana's grid: 24 columns; a row unit is 30 px.
const (
	width   = 1440
	colW    = width / 24
	rowH    = 30
	pad     = 8
	legendH = 16
)

// Grafana's dark theme and classic palette.
var palette = []string{"#73BF69", "#F2CC0C", "#8AB8FF", "#FF780A", "#F2495C", "#5794F2", "#B877D9", "#705DA0", "#37872D", "#FADE2A", "#447EBC", "#C15C17"}

type line struct {
	name   string
	values []float64
}

func render(d dashboard, scrapes []promlite.Scrape, rate time.Duration) ([]byte, error) {
	height := 0
	for _, p := range d.Panels {
		height = max(height, (p.GridPos.Y+p.GridPos.H)*rowH)
	}
	var b bytes.Buffer
	top := 40
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="Inter, DejaVu Sans, sans-serif">`+"\n", width, height+top+pad)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#111217"/>`+"\n")
	first, last := scrapes[0].Time, scrapes[len(scrapes)-1].Time
	fmt.Fprintf(&b, `<text x="%d" y="26" fill="#ccccdc" font-size="18">%s</text>`, pad, html.EscapeString(d.Title))
	fmt.Fprintf(&b, `<text x="%d" y="26" fill="#8e8e8e" font-size="12" text-anchor="end">%s to %s UTC, %d scrapes of a real run, rate interval %v</text>`+"\n",
		width-pad, first.UTC().Format("2006-01-02 15:04:05"), last.UTC().Format("15:04:05"), len(scrapes), rate)
	for _, p := range d.Panels {
		var lines []line
		for _, tg := range p.Targets {
			e, err := promlite.Parse(tg.Expr, rate)
			if err != nil {
				return nil, fmt.Errorf("panel %q: %w", p.Title, err)
			}
			for _, s := range promlite.Eval(e, scrapes) {
				lines = append(lines, line{name: legend(tg.LegendFormat, s.Labels), values: s.Values})
			}
		}
		x, y := p.GridPos.X*colW+pad/2, top+p.GridPos.Y*rowH+pad/2
		drawPanel(&b, p, lines, scrapes, x, y, p.GridPos.W*colW-pad, p.GridPos.H*rowH-pad)
	}
	b.WriteString("</svg>\n")
	return b.Bytes(), nil
}

var placeholder = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)

// legend fills Grafana's {{label}} placeholders.
func legend(format string, labels map[string]string) string {
	if format == "" {
		return fmt.Sprint(labels)
	}
	return placeholder.ReplaceAllStringFunc(format, func(m string) string {
		return labels[placeholder.FindStringSubmatch(m)[1]]
	})
}

func drawPanel(b *bytes.Buffer, p panel, lines []line, scrapes []promlite.Scrape, x, y, w, h int) {
	fmt.Fprintf(b, `<g transform="translate(%d,%d)"><rect width="%d" height="%d" rx="2" fill="#181b1f" stroke="#2a2d33"/>`, x, y, w, h)
	fmt.Fprintf(b, `<text x="8" y="18" fill="#ccccdc" font-size="13" font-weight="500">%s</text>`, html.EscapeString(p.Title))
	legendRows := min((len(lines)+2)/3, 3)
	plotX, plotY := 58, 30
	plotW, plotH := w-plotX-12, h-plotY-22-legendRows*legendH
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, l := range lines {
		for _, v := range l.values {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 1) {
		fmt.Fprintf(b, `<text x="%d" y="%d" fill="#8e8e8e" font-size="12" text-anchor="middle">No data</text></g>`+"\n", w/2, h/2)
		return
	}
	lo = math.Min(lo, 0)
	if hi <= lo {
		hi = lo + 1
	}
	hi = niceCeil(hi)
	// Grid and y labels.
	for i := 0; i <= 4; i++ {
		v := lo + (hi-lo)*float64(i)/4
		yy := plotY + plotH - int(float64(plotH)*float64(i)/4)
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#2a2d33"/>`, plotX, plotX+plotW, yy, yy)
		fmt.Fprintf(b, `<text x="%d" y="%d" fill="#8e8e8e" font-size="10" text-anchor="end">%s</text>`, plotX-4, yy+3, format(v, p.FieldConfig.Defaults.Unit))
	}
	t0, t1 := scrapes[0].Time, scrapes[len(scrapes)-1].Time
	span := t1.Sub(t0).Seconds()
	xOf := func(i int) float64 { return float64(plotX) + float64(plotW)*scrapes[i].Time.Sub(t0).Seconds()/span }
	for i := 0; i <= 4; i++ {
		tt := t0.Add(time.Duration(float64(t1.Sub(t0)) * float64(i) / 4))
		xx := float64(plotX) + float64(plotW)*float64(i)/4
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 4:
			anchor = "end"
		}
		fmt.Fprintf(b, `<text x="%.0f" y="%d" fill="#8e8e8e" font-size="10" text-anchor="%s">%s</text>`, xx, plotY+plotH+13, anchor, tt.UTC().Format("15:04:05"))
	}
	for li, l := range lines {
		color := palette[li%len(palette)]
		var path strings.Builder
		pen := false
		for i, v := range l.values {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				pen = false
				continue
			}
			yy := float64(plotY+plotH) - float64(plotH)*(v-lo)/(hi-lo)
			if pen {
				fmt.Fprintf(&path, " L%.1f,%.1f", xOf(i), yy)
			} else {
				fmt.Fprintf(&path, " M%.1f,%.1f", xOf(i), yy)
				pen = true
			}
		}
		fmt.Fprintf(b, `<path d="%s" fill="none" stroke="%s" stroke-width="1.5"/>`, strings.TrimSpace(path.String()), color)
		if li < legendRows*3 {
			lx := 8 + (li%3)*(w/3)
			ly := plotY + plotH + 22 + (li/3)*legendH + 8
			name := l.name
			if len(name) > 48 {
				name = name[:47] + "…"
			}
			fmt.Fprintf(b, `<rect x="%d" y="%d" width="10" height="3" fill="%s"/><text x="%d" y="%d" fill="#ccccdc" font-size="10">%s</text>`, lx, ly-4, color, lx+14, ly, html.EscapeString(name))
		}
	}
	if len(lines) > legendRows*3 {
		fmt.Fprintf(b, `<text x="%d" y="%d" fill="#8e8e8e" font-size="10" text-anchor="end">+%d more series</text>`, w-8, h-6, len(lines)-legendRows*3)
	}
	b.WriteString("</g>\n")
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// format writes a value in the panel's unit, as Grafana does.
func format(v float64, unit string) string {
	switch unit {
	case "s":
		switch a := math.Abs(v); {
		case a == 0:
			return "0"
		case a < 1e-3:
			return fmt.Sprintf("%.0f µs", v*1e6)
		case a < 1:
			return fmt.Sprintf("%.3g ms", v*1e3)
		case a < 120:
			return fmt.Sprintf("%.3g s", v)
		default:
			return fmt.Sprintf("%.3g min", v/60)
		}
	case "reqps":
		return fmt.Sprintf("%.3g req/s", v)
	}
	return fmt.Sprintf("%.3g", v)
}
