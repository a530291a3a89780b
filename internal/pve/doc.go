// Package pve is the one package that talks to the Proxmox VE API. It uses go-proxmox for transport,
// authentication and writes, decodes with its own types where go-proxmox drops fields, and assembles the
// Inventory snapshot that the rest of ProxBalance reads. One read bypasses go-proxmox's Req: the large
// /cluster/resources answer of every round is decoded in one pass (json-iterator) through the same http.Client,
// transport and session, because go-proxmox decodes every answer twice.
//
// Every non-2xx answer is an *APIError (see IsUnauthorized, IsForbidden, IsNotFound, IsUnavailable); task exit
// status "WARNINGS: N" counts as success (WaitTask). A Snapshotter keeps a steady-state refresh at
// 1 + (online nodes) API calls: /cluster/resources and /nodes/{node}/status every round, everything else from
// caches with per-part TTLs.
//
//	c, err := pve.New(pve.Config{URL: "https://pve1:8006", TokenID: "prometheus@pve!exporter",
//		TokenSecretFile: "/run/secrets/pve", CAFile: "/etc/pve/pve-root-ca.pem"})
//	snap := pve.NewSnapshotter(c, pve.SnapshotterConfig{MaxAge: 10 * time.Second})
//	inv, err := snap.Inventory(ctx, pve.InventoryOptions{Fresh: pve.PartTasks})
package pve
