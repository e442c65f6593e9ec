package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	stdnet "net"
	"net/http"
	"net/http/pprof"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/internal/vfs"
	"github.com/weftfs/weft/net"
)

// ShutdownTimeout bounds the graceful shutdown Run does when its context
// is cancelled; requests still running then are cut off.
const ShutdownTimeout = 10 * time.Second

// Run serves the node until ctx is cancelled, then shuts down gracefully
// and returns nil, or returns the error that stopped it. A config that
// fails Validate is returned as that error before anything is opened.
func Run(ctx context.Context, cfg Config) (err error) {
	keys, err := cfg.check()
	if err != nil {
		return err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	listen := cfg.Listen
	if listen == "" {
		listen = DefaultListen
	}
	containers := cfg.Containers
	if len(containers) == 0 {
		containers = []uint64{1}
	}
	mode := engine.PollMode(0)
	if cfg.Mode != "" {
		mode, _ = engine.ParsePollMode(cfg.Mode) // checked by check
	}

	if err := formatIfMissing(cfg.Device, cfg.FormatSize, log); err != nil {
		return err
	}
	eng, err := engine.Open(engine.Options{Path: cfg.Device, Shards: cfg.Shards, Cores: cfg.Cores, Mode: mode, RecordBytes: cfg.RecordBytes, ReadCacheBytes: cfg.ReadCacheBytes, Logger: log})
	if err != nil {
		return fmt.Errorf("node: opening %s: %w", cfg.Device, err)
	}
	defer func() {
		if cerr := eng.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("node: closing the engine: %w", cerr)
		}
	}()

	var (
		handler net.Handler
		cl      *clusterNode
		store   net.KeyStore
	)
	if len(cfg.Managers) > 0 {
		ring := newKeyring(keys, cfg.clusterKey())
		store = ring
		if cl, err = newClusterNode(&cfg, ring, eng, log); err != nil {
			return err
		}
		// Every path out of Run from here stops the cluster side before
		// the engine closes (deferred calls run last-in first-out).
		defer cl.closePool()
		defer cl.stop()
		handler = cl.mux
	} else {
		cs, err := fsproto.NewChunkServer(eng, fsproto.ChunkServerConfig{
			Containers: func(id uint64) bool { return slices.Contains(containers, id) },
			Logger:     log,
		})
		if err != nil {
			return fmt.Errorf("node: %w", err)
		}
		handler = cs
		var ms net.MemKeyStore
		for _, k := range keys {
			ms.Add(k.id, k.secret, k.readOnly)
		}
		store = &ms
	}
	scfg := net.ServerConfig{ClusterID: cfg.ClusterID, Keys: store, Logger: log}
	if cfg.Conns == ConnsReactors || (cl == nil && cfg.Conns == "") {
		scfg.Loop = engineLoop{eng}
	}
	srv, err := net.NewServer(scfg, handler)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if cl != nil {
		cl.srv = srv // before start: the key loop closes revoked keys' connections
	}
	ln, err := stdnet.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("node: listen: %w", err)
	}
	var (
		httpSrv     *http.Server
		mln         stdnet.Listener
		metricsAddr string
	)
	if cfg.MetricsListen != "" {
		mln, err = stdnet.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("node: metrics listen: %w", err)
		}
		metricsAddr = mln.Addr().String()
		reg := prometheus.NewRegistry()
		var figures func() clusterFigures
		if cl != nil {
			figures = cl.figures
		}
		reg.MustRegister(newCollector(eng.Stats, srv.Metrics, figures, cfg.Labels))
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError)}))
		// Profiles for operators and benchmarks, on the same (operator-only)
		// listener as the metrics.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: metricsReadTimeout, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	}

	sb := eng.Superblock()
	if cl != nil {
		log.Info("node: serving in cluster mode", "listen", ln.Addr().String(), "metrics", metricsAddr, "device", cfg.Device,
			"uuid", sb.UUID.String(), "node", uint64(cl.id), "manager_member", cfg.ManagerID, "managers", cfg.Managers,
			"shards", len(eng.Stats().Shards), "mode", mode.String(), "engine", eng.Describe())
	} else {
		log.Info("node: serving", "listen", ln.Addr().String(), "metrics", metricsAddr, "device", cfg.Device,
			"uuid", sb.UUID.String(), "shards", len(eng.Stats().Shards), "mode", mode.String(),
			"containers", containers, "engine", eng.Describe())
	}

	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	running := 1
	if httpSrv != nil {
		running++
		go func() { errc <- httpSrv.Serve(mln) }()
	}
	if cl != nil {
		cl.start(ln.Addr().String())
	}
	if cfg.OnListening != nil {
		cfg.OnListening(ln.Addr().String(), metricsAddr)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		running--
		runErr = fmt.Errorf("node: serving: %w", runErr)
	}
	log.Info("node: stopping", "listen", ln.Addr().String())
	if cl != nil {
		// First the loops, the manager member and the data server: their
		// long polls and pending operations end at once (answered with
		// errors callers retry elsewhere), so the server's graceful
		// shutdown does not wait for them.
		cl.stop()
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("node: graceful shutdown cut short; in-flight requests aborted", "err", err)
	}
	if httpSrv != nil {
		if err := httpSrv.Shutdown(sctx); err != nil {
			httpSrv.Close()
		}
	}
	for ; running > 0; running-- {
		<-errc
	}
	log.Info("node: stopped", "listen", ln.Addr().String(), "err", runErr)
	return runErr
}

// formatIfMissing formats path as a file of size bytes when size > 0 and
// path does not exist. Small devices get smaller segments, so that they
// still hold a useful number of them.
func formatIfMissing(path string, size int64, log *slog.Logger) error {
	if size <= 0 {
		return nil
	}
	if _, err := vfs.Default.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return nil // exists (or cannot be checked: Open reports why)
	}
	seg := uint32(32 << 20)
	for seg > 1<<20 && size/int64(seg) < 64 {
		seg /= 2
	}
	sb, err := engine.Format(vfs.Default, engine.FormatRequest{Path: path, Size: size, Options: engine.FormatOptions{SegmentSize: seg}})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	log.Info("node: formatted device", "device", path, "uuid", sb.UUID.String(), "segments", sb.SegmentCount, "segment_size", sb.SegmentSize)
	return nil
}

// engineLoop runs a server's connections on the engine's reactors.
type engineLoop struct{ e *engine.Engine }

func (l engineLoop) Host(g net.LoopGuest) (func(), error) { return l.e.Host(g) }
