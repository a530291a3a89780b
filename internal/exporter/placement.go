package exporter

import (
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/proxbalance/proxbalance/internal/pve"
)

var (
	guestTagInfoDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "guest", "tag_info"),
		"One series per tag of a guest.", []string{"id", "tag"}, nil)
	guestLocalDeviceInfoDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "guest", "local_device_info"),
		"Host-local hardware (PCI, USB, serial, raw disk, container device) that pins a guest to its node.",
		[]string{"id", "key", "kind"}, nil)
	guestBindMountInfoDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "guest", "bind_mount_info"),
		"Bind mount of a container; shared=\"1\" when the path exists on every node.", []string{"id", "key", "shared"}, nil)
	guestStorageInfoDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "guest", "storage_info"),
		"One series per storage that a guest's volumes use.", []string{"id", "storage"}, nil)
	guestLocalDiskDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "guest", "local_disk_bytes"),
		"Size in bytes of the guest's volumes on storage that is not shared on its node (what a migration copies).", idLabel, nil)
	guestHAManagedDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "guest", "ha_managed"),
		"Whether HA manages the guest (1) or not (0).", idLabel, nil)
)

// placementCollector exports the facts that decide where a guest may run: its tags, host-local hardware,
// bind mounts, the storages of its volumes and HA management. Config-derived families need the guest config
// (/nodes/{node}/{qemu,lxc}/{vmid}/config) and are absent for guests whose config was not fetched.
type placementCollector struct{}

func (placementCollector) Update(inv *pve.Inventory, w *SeriesWriter) error {
	shared := sharedStorages(inv.Storages)
	haManaged := make(map[int]bool, len(inv.HA.Resources))
	for _, r := range inv.HA.Resources {
		haManaged[r.VMID] = true
	}
	for _, i := range sortedGuests(inv.Guests) {
		g := &inv.Guests[i]
		id := g.ID()
		for _, t := range sortedCopy(g.Tags) {
			w.gauge(guestTagInfoDesc, 1, id, t)
		}
		w.gauge(guestHAManagedDesc, boolValue(g.HAManaged || haManaged[g.VMID]), id)
		if g.Config == nil {
			continue
		}
		for _, d := range g.Config.LocalDevices {
			w.gauge(guestLocalDeviceInfoDesc, 1, id, d.Key, string(d.Kind))
		}
		for _, mp := range g.Config.MountPoints {
			if mp.Bind {
				w.gauge(guestBindMountInfoDesc, 1, id, mp.Key, strconv.Itoa(int(boolValue(mp.Shared))))
			}
		}
		var localBytes uint64
		storages := make([]string, 0, len(g.Config.Disks))
		for _, d := range g.Config.Disks {
			if d.Storage == "" {
				continue
			}
			if !slices.Contains(storages, d.Storage) {
				storages = append(storages, d.Storage)
			}
			if !d.CDROM && !shared[storageKey{g.Node, d.Storage}] {
				localBytes += d.Size
			}
		}
		slices.Sort(storages)
		for _, st := range storages {
			w.gauge(guestStorageInfoDesc, 1, id, st)
		}
		w.gauge(guestLocalDiskDesc, float64(localBytes), id)
	}
	return partialError(inv, anyOf(isGuestConfigEndpoint, endpointMatcher([]string{"/cluster/resources", "/cluster/ha"}, []string{"storage"})))
}

type storageKey struct{ node, storage string }

// sharedStorages says which storages are shared, per node. A storage unknown on a node counts as local: a
// migration would have to copy its volumes, if it can at all.
func sharedStorages(storages []pve.Storage) map[storageKey]bool {
	shared := make(map[storageKey]bool, len(storages))
	for _, s := range storages {
		if s.Shared {
			shared[storageKey{s.Node, s.Storage}] = true
		}
	}
	return shared
}
