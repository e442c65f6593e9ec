package manager

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/raftgroup"
	"github.com/weftfs/weft/fsproto/raftlog"
	"github.com/weftfs/weft/internal/vfs"
)

// ForceSoleMember rewrites member id's raft log of the managers' group, in
// dir (Config.Dir; fsys nil: vfs.Default), so that when the member starts
// again it is the group's only voter (raftgroup.ForceSoleVoter): it
// elects itself with the cluster map its log holds, and its repair then
// adds the other Peers back as learners, which join from its log or a
// snapshot (see "Members and a lost log" in the package doc).
//
// It is for a group that cannot elect a leader any more because a
// majority of its members lost their logs for good, and it is unsafe as
// ForceSoleVoter is: what only the lost members held is gone, and what
// only this member held counts as committed. The member must be stopped
// (the log's lock refuses otherwise), and no other member that holds the
// group's log may run again. With dryRun it writes nothing and reports
// what it would do.
func ForceSoleMember(fsys vfs.FS, dir string, id uint64, dryRun bool, log *slog.Logger) (raftgroup.ForceResult, error) {
	if log == nil {
		log = slog.Default()
	}
	store, err := raftlog.OpenExisting(raftlog.Options{FS: fsys, Dir: dir, Logger: log})
	if err != nil {
		return raftgroup.ForceResult{}, fmt.Errorf("manager %d: %w", id, err)
	}
	res, err := raftgroup.ForceSoleVoter(store, id, dryRun)
	if cerr := store.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close raft log: %w", cerr)
	}
	if err != nil {
		return res, fmt.Errorf("manager %d: %s: %w", id, dir, err)
	}
	return res, nil
}

// Margins by which SeedFromMap moves the map past the copy. The epoch:
// a node may have seen maps newer than the copy (the newest copy lags the
// lost history by up to a second of changes), and must take the seeded
// map for a newer one, not for one it has. The next container and PG
// ids: containers created after the copy was written may have data on
// the nodes under those ids, and a new container must not meet it.
const (
	SeedEpochMargin     = 1 << 16
	SeedContainerMargin = 256
	SeedPGMargin        = 1 << 16
)

// SeededMap is the map SeedFromMap starts the group with, given the copy
// m: m with its epoch, next container id and next PG id moved on by the
// seed margins. m is not modified.
func SeededMap(m *clustermap.Map) (*clustermap.Map, error) {
	enc, err := m.MarshalBinary()
	if err != nil {
		return nil, err
	}
	s, err := clustermap.DecodeMap(enc)
	if err != nil {
		return nil, err
	}
	s.Epoch += SeedEpochMargin
	s.NextContainer += SeedContainerMargin
	s.NextPG += SeedPGMargin
	return s, nil
}

// SeedFromMap starts the managers' group afresh from a copy of the
// cluster map (a node's map copy, see package node): it writes, into
// member id's empty raft log in dir (fsys nil: vfs.Default), a group whose
// only voter is id at addr and whose map is SeededMap(m). When the member
// starts, it elects itself with that map, and its repair adds the other
// Peers as learners, which join from a snapshot.
//
// It is for a cluster whose managers all lost their raft logs, and it is
// unsafe as ForceSoleMember is: whatever the managers committed after the
// copy was written is lost (the nodes write their copies within a second
// of each map they see, so pick the copy with the highest epoch), and the
// data of containers created in that window stays unreachable (their PGs
// are below the seeded map's next PG id, not in the map, so the nodes
// delete them as a deleted container's). Every other member's log must be
// empty before it starts again: a member that kept a log of the lost
// history, or of a map its members started afresh, would run a second
// group. It refuses a map without an FSID and a log that is not empty.
// With dryRun it writes nothing.
func SeedFromMap(fsys vfs.FS, dir string, id uint64, addr string, m *clustermap.Map, dryRun bool, log *slog.Logger) (*clustermap.Map, error) {
	if log == nil {
		log = slog.Default()
	}
	if m.FSID.IsZero() {
		return nil, fmt.Errorf("manager %d: seed from a map copy: the copy (epoch %d) has no FSID; the nodes would refuse it", id, m.Epoch)
	}
	seeded, err := SeededMap(m)
	if err != nil {
		return nil, fmt.Errorf("manager %d: seed from a map copy: %w", id, err)
	}
	enc, err := seeded.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("manager %d: seed from a map copy: %w", id, err)
	}
	if fsys == nil {
		fsys = vfs.Default
	}
	if dryRun {
		// A missing or empty folder is an empty log; a dry run does not
		// open it, since opening makes the journal's first segment.
		names, err := fsys.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) || err == nil && len(names) == 0 {
			return seeded, nil
		}
	}
	store, err := raftlog.Open(raftlog.Options{FS: fsys, Dir: dir, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("manager %d: %w", id, err)
	}
	empty, err := store.Empty()
	if err == nil && !empty {
		err = fmt.Errorf("the raft log in %s is not empty: move it away first (it holds a group, of the lost history or started afresh)", dir)
	}
	if err == nil && !dryRun {
		err = raftgroup.SeedSoleVoter(store, id, addr, appendSnapshot(nil, enc, nil))
	}
	if cerr := store.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close raft log: %w", cerr)
	}
	if err != nil {
		return nil, fmt.Errorf("manager %d: seed from a map copy: %w", id, err)
	}
	return seeded, nil
}
