package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// chart draws calls/s against concurrent callers, one panel per payload and
// one line per transport, both axes logarithmic, and writes it as a PNG.
func (r *run) chart(path string) error {
	var panels []*plot.Plot
	var legend []plot.Thumbnailer
	for i, pl := range plan {
		p, entries := r.panel(pl.load, pl.callers)
		panels = append(panels, p)
		if i == 0 {
			legend = entries
		}
	}
	// The last tile holds the legend alone.
	lp := plot.New()
	lp.HideAxes()
	lp.Title.Text = "transport"
	lp.Legend.Top, lp.Legend.Left = true, true
	lp.Legend.TextStyle.Font.Size = vg.Points(12)
	for i, t := range r.transports {
		lp.Legend.Add(t.name, legend[i])
	}
	panels = append(panels, lp)
	return writeGrid(path, panels, 2)
}

// panel is one payload's plot, and each transport's legend entry.
func (r *run) panel(l load, callers []int) (*plot.Plot, []plot.Thumbnailer) {
	p := plot.New()
	p.Title.Text = l.label
	p.X.Label.Text = "concurrent callers"
	p.Y.Label.Text = "calls/s"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	var xt []plot.Tick
	for _, n := range callers {
		xt = append(xt, plot.Tick{Value: float64(n), Label: fmt.Sprint(n)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(xt)
	p.Y.Tick.Marker = rateTicks{}
	p.Add(plotter.NewGrid())
	lo, hi := math.Inf(1), 0.0
	var legend []plot.Thumbnailer
	for _, t := range r.transports {
		var pts plotter.XYs
		for _, n := range callers {
			if c := r.cell(t.name, l.name, n).sum; c.measured && c.rate > 0 {
				pts = append(pts, plotter.XY{X: float64(n), Y: c.rate})
				lo, hi = math.Min(lo, c.rate), math.Max(hi, c.rate)
			}
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			line, _ = plotter.NewLine(plotter.XYs{}) // keep the legend entry
		}
		dots, _ := plotter.NewScatter(pts)
		style(t.name, line, dots)
		if len(pts) > 0 {
			p.Add(line, dots)
		}
		legend = append(legend, legendEntry{line, dots})
	}
	p.X.Min, p.X.Max = float64(callers[0])/1.4, float64(callers[len(callers)-1])*1.4
	if hi > 0 {
		p.Y.Min, p.Y.Max = lo/1.5, hi*1.5
	}
	return p, legend
}

// writeGrid lays panels out in rows of cols and writes them as a PNG.
func writeGrid(path string, panels []*plot.Plot, cols int) error {
	rows := (len(panels) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
		for j := range cols {
			if k := i*cols + j; k < len(panels) {
				grid[i][j] = panels[k]
			}
		}
	}
	img := vgimg.New(vg.Length(cols)*5*vg.Inch, vg.Length(rows)*4*vg.Inch)
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadTop: vg.Points(8), PadBottom: vg.Points(8),
		PadLeft: vg.Points(8), PadRight: vg.Points(8), PadX: vg.Points(24), PadY: vg.Points(24)}
	canvases := plot.Align(grid, tiles, dc)
	for i := range grid {
		for j := range grid[i] {
			if grid[i][j] != nil {
				grid[i][j].Draw(canvases[i][j])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// style gives each family a colour (TCP grey, amqprpc gob blue, amqprpc
// JSON green, JSON floor red, echo floor orange, no-ack floor brown, gob
// floor pink, the peer purple) and each variant a dash (direct reply-to,
// gob over TCP and the peer's fast mode solid; private reply queue, JSON
// over TCP and the peer's defaults dashed).
func style(name string, line *plotter.Line, dots *plotter.Scatter) {
	c := color.RGBA{A: 255}
	shape := draw.GlyphDrawer(draw.CircleGlyph{})
	switch {
	case strings.HasPrefix(name, "tcp"):
		c = color.RGBA{R: 110, G: 110, B: 110, A: 255}
		shape = draw.SquareGlyph{}
	case strings.HasPrefix(name, "amqp-gob"):
		c = color.RGBA{R: 31, G: 100, B: 200, A: 255}
	case strings.HasPrefix(name, "amqp-json"):
		c = color.RGBA{R: 20, G: 150, B: 60, A: 255}
		shape = draw.TriangleGlyph{}
	case strings.HasPrefix(name, "floor-json"):
		c = color.RGBA{R: 210, G: 40, B: 40, A: 255}
		shape = draw.CrossGlyph{}
	case name == "floor-echo-noack":
		c = color.RGBA{R: 130, G: 70, B: 20, A: 255}
		shape = draw.PlusGlyph{}
	case strings.HasPrefix(name, "floor-gob"):
		c = color.RGBA{R: 220, G: 80, B: 160, A: 255}
		shape = draw.CrossGlyph{}
	case strings.HasPrefix(name, "peer"):
		c = color.RGBA{R: 120, G: 40, B: 170, A: 255}
		shape = draw.RingGlyph{}
	case strings.HasPrefix(name, "floor-echo"):
		c = color.RGBA{R: 235, G: 140, B: 0, A: 255}
		shape = draw.PlusGlyph{}
	}
	line.Color, line.Width = c, vg.Points(1.6)
	if strings.HasSuffix(name, "private") || name == "tcp-json" || name == "peer-default" {
		line.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
	}
	dots.Color, dots.Shape, dots.Radius = c, shape, vg.Points(3)
}

// legendEntry shows a line with its glyph in the legend.
type legendEntry struct {
	line *plotter.Line
	dots *plotter.Scatter
}

func (e legendEntry) Thumbnail(c *draw.Canvas) {
	e.line.Thumbnail(c)
	e.dots.Thumbnail(c)
}

// rateTicks labels a logarithmic calls/s axis at 1, 2 and 5 times each power
// of ten.
type rateTicks struct{}

func (rateTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			ticks = append(ticks, plot.Tick{Value: v, Label: rateLabel(v)})
		}
	}
	return ticks
}

func rateLabel(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	}
	return fmt.Sprintf("%g", v)
}
