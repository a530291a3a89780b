// Package pve is the one package that talks to the Proxmox VE API. It uses go-proxmox for transport,
// authentication and writes, decodes with its own types where go-proxmox drops fields, and assembles the
// Inventory snapshot that the rest of ProxBalance reads.
package pve
