// Package exporter turns Proxmox VE inventory snapshots into Prometheus metrics: the collectors that convert a
// pve.Inventory into metric families compatible with prometheus-pve-exporter (plus placement facts), the
// per-target /pve handler, its module configuration and the exporter's own metrics.
package exporter
