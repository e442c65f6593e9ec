package bench

import (
	"fmt"
	"strings"
	"time"
)

// startProgress draws a one-line live display (elapsed, IOPS and bandwidth
// per direction over the last interval) until the returned stop function
// is called, which erases the line.
func startProgress(opts RunOptions, clones []*clone, start time.Time) (stop func()) {
	if opts.Progress == nil {
		return func() {}
	}
	var total time.Duration
	for _, c := range clones {
		total = max(total, c.job.RampTime+c.job.Runtime)
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(opts.ProgressInterval)
		defer tick.Stop()
		var last [2]struct{ bytes, ios int64 }
		lastT := time.Now()
		width := 0
		for {
			select {
			case <-done:
				if width > 0 {
					fmt.Fprintf(opts.Progress, "\r%s\r", strings.Repeat(" ", width))
				}
				return
			case now := <-tick.C:
				dt := now.Sub(lastT).Seconds()
				lastT = now
				var cur [2]struct{ bytes, ios int64 }
				for _, c := range clones {
					for d := range cur {
						cur[d].bytes += c.live[d].bytes.Load()
						cur[d].ios += c.live[d].ios.Load()
					}
				}
				elapsed := now.Sub(start).Truncate(time.Second)
				line := "[" + elapsed.String()
				if total > 0 {
					line += "/" + total.String()
				}
				line += "]"
				for d, name := range []string{"read", "write"} {
					ios := cur[d].ios - last[d].ios
					if ios == 0 && cur[d].ios == 0 {
						continue
					}
					line += fmt.Sprintf(" %s: %s IOPS %s/s", name, fmtCount(float64(ios)/dt), fmtBytes(int64(float64(cur[d].bytes-last[d].bytes)/dt)))
				}
				last = cur
				pad := ""
				if len(line) < width {
					pad = strings.Repeat(" ", width-len(line))
				}
				width = max(width, len(line))
				fmt.Fprintf(opts.Progress, "\r%s%s", line, pad)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

func fmtCount(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
