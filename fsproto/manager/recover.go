package manager

import (
	"fmt"
	"log/slog"

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
