package meta

import (
	"fmt"
	"log/slog"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/raftgroup"
	"github.com/weftfs/weft/fsproto/raftlog"
	"github.com/weftfs/weft/internal/vfs"
)

// ForceSoleMember rewrites node's raft log of container c's metadata
// group, under dir (HostConfig.Dir; fsys nil: vfs.Default), so that when
// the node starts again its member is the group's only voter
// (raftgroup.ForceSoleVoter): it elects itself with the namespace its log
// holds, and its Repair then adds the map's other members back as new
// members, which join from its log or a snapshot.
//
// It is for a group that cannot run any more because a majority of its
// members lost their logs for good (a formed group never bootstraps
// again, see probe), and it is unsafe as ForceSoleVoter is: what only
// the lost members held is gone, and what only this member held counts
// as committed. The node must be stopped (the log's lock refuses
// otherwise), and no other member that holds the group's log may run
// again: stop such a node's member first, or force on it instead. With
// dryRun it writes nothing and reports what it would do.
func ForceSoleMember(fsys vfs.FS, dir string, c clustermap.ContainerID, node clustermap.NodeID, dryRun bool, log *slog.Logger) (raftgroup.ForceResult, error) {
	if fsys == nil {
		fsys = vfs.Default
	}
	if log == nil {
		log = slog.Default()
	}
	logDir := logDirIn(dir, c)
	store, err := raftlog.OpenExisting(raftlog.Options{FS: fsys, Dir: logDir, Logger: log})
	if err != nil {
		return raftgroup.ForceResult{}, fmt.Errorf("meta: container %d: %w", c, err)
	}
	res, err := raftgroup.ForceSoleVoter(store, uint64(node), dryRun)
	if cerr := store.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close raft log: %w", cerr)
	}
	if err != nil {
		return res, fmt.Errorf("meta: container %d: %s: %w", c, logDir, err)
	}
	return res, nil
}
