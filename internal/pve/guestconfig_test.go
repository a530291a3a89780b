package pve

import (
	"reflect"
	"strings"
	"testing"
)

// kv builds a config map from key/value pairs.
func kv(pairs ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return m
}

func TestParseQEMUConfig(t *testing.T) {
	tests := []struct {
		name    string
		kv      map[string]string
		vcpus   int
		memory  uint64
		onboot  bool
		disks   []Disk
		devices []LocalDevice
		tags    []string
	}{
		{
			name: "fixture-like",
			kv: kv("cores", "2", "sockets", "1", "memory", "2048", "onboot", "1", "tags", "prod;web",
				"ide2", "local:iso/debian-12.6.0-amd64-netinst.iso,media=cdrom,size=631M",
				"scsi0", "local-zfs:vm-100-disk-0,iothread=1,size=32G"),
			vcpus: 2, memory: 2048 << 20, onboot: true, tags: []string{"prod", "web"},
			disks: []Disk{
				{Key: "ide2", Storage: "local", Volume: "local:iso/debian-12.6.0-amd64-netinst.iso", Size: 631 << 20, CDROM: true},
				{Key: "scsi0", Storage: "local-zfs", Volume: "local-zfs:vm-100-disk-0", Size: 32 << 30},
			},
		},
		{
			name:   "defaults and property-string memory",
			kv:     kv("memory", "current=4096,balloon=1024"),
			vcpus:  1,
			memory: 4096 << 20,
		},
		{
			name:   "no memory key is PVE's default 512 MiB",
			kv:     kv("cores", "4", "sockets", "2"),
			vcpus:  8,
			memory: 512 << 20,
		},
		{
			name:   "vcpus wins over cores*sockets",
			kv:     kv("cores", "4", "sockets", "2", "vcpus", "3", "memory", "1024"),
			vcpus:  3,
			memory: 1024 << 20,
		},
		{
			name: "every disk kind, natural order, empty drives skipped",
			kv: kv("memory", "512",
				"scsi10", "ceph:vm-1-disk-10,size=1T", "scsi2", "ceph:vm-1-disk-2,size=1.5G",
				"virtio0", "file=nfs:1/vm-1-disk-3.qcow2,size=10G", "sata1", "local-lvm:vm-1-disk-4",
				"efidisk0", "local-lvm:vm-1-disk-5,efitype=4m,size=1M", "tpmstate0", "local-lvm:vm-1-disk-6,size=4M,version=v2.0",
				"unused0", "local-lvm:vm-1-disk-7", "ide0", "none,media=cdrom", "ide1", "cdrom,media=cdrom",
				"ide3", "local-lvm:vm-1-cloudinit,media=cdrom"),
			vcpus: 1, memory: 512 << 20,
			disks: []Disk{
				{Key: "efidisk0", Storage: "local-lvm", Volume: "local-lvm:vm-1-disk-5", Size: 1 << 20},
				{Key: "ide1", Volume: "cdrom", CDROM: true},
				{Key: "ide3", Storage: "local-lvm", Volume: "local-lvm:vm-1-cloudinit", CDROM: true},
				{Key: "sata1", Storage: "local-lvm", Volume: "local-lvm:vm-1-disk-4"},
				{Key: "scsi2", Storage: "ceph", Volume: "ceph:vm-1-disk-2", Size: 3 << 29},
				{Key: "scsi10", Storage: "ceph", Volume: "ceph:vm-1-disk-10", Size: 1 << 40},
				{Key: "tpmstate0", Storage: "local-lvm", Volume: "local-lvm:vm-1-disk-6", Size: 4 << 20},
				{Key: "unused0", Storage: "local-lvm", Volume: "local-lvm:vm-1-disk-7", Unused: true},
				{Key: "virtio0", Storage: "nfs", Volume: "nfs:1/vm-1-disk-3.qcow2", Size: 10 << 30},
			},
			devices: []LocalDevice{{Key: "ide1", Kind: DeviceRawDisk, Value: "cdrom"}},
		},
		{
			name: "passthrough and local hardware",
			kv: kv("memory", "512", "hostpci0", "0000:01:00.0,pcie=1", "hostpci1", "mapping=gpu",
				"usb0", "host=1-2", "usb1", "spice", "usb2", "host=spice,usb3=1", "serial0", "socket", "serial1", "/dev/ttyS0",
				"parallel0", "/dev/parport0", "scsi1", "/dev/disk/by-id/ata-SAMSUNG_1,size=100G"),
			vcpus: 1, memory: 512 << 20,
			disks: []Disk{{Key: "scsi1", Volume: "/dev/disk/by-id/ata-SAMSUNG_1", Size: 100 << 30}},
			devices: []LocalDevice{
				{Key: "hostpci0", Kind: DevicePCI, Value: "0000:01:00.0,pcie=1"},
				{Key: "hostpci1", Kind: DevicePCI, Value: "mapping=gpu"},
				{Key: "parallel0", Kind: DeviceParallel, Value: "/dev/parport0"},
				{Key: "scsi1", Kind: DeviceRawDisk, Value: "/dev/disk/by-id/ata-SAMSUNG_1"},
				{Key: "serial1", Kind: DeviceSerial, Value: "/dev/ttyS0"},
				{Key: "usb0", Kind: DeviceUSB, Value: "host=1-2"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gc := ParseGuestConfig(TypeQEMU, tt.kv, nil)
			if gc.VCPUs != tt.vcpus || gc.Memory != tt.memory || gc.OnBoot != tt.onboot {
				t.Errorf("vcpus %d memory %d onboot %v; want %d %d %v", gc.VCPUs, gc.Memory, gc.OnBoot, tt.vcpus, tt.memory, tt.onboot)
			}
			if !reflect.DeepEqual(gc.Disks, tt.disks) {
				t.Errorf("disks:\n got %+v\nwant %+v", gc.Disks, tt.disks)
			}
			if !reflect.DeepEqual(gc.LocalDevices, tt.devices) {
				t.Errorf("devices:\n got %+v\nwant %+v", gc.LocalDevices, tt.devices)
			}
			if !reflect.DeepEqual(gc.Tags, tt.tags) {
				t.Errorf("tags %v, want %v", gc.Tags, tt.tags)
			}
		})
	}
}

func TestParseLXCConfigFixture(t *testing.T) {
	gc, err := DecodeGuestConfig(TypeLXC, fixtureData(t, "lxc_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := &GuestConfig{
		Digest: "5911baea29f4c0073fb063fd9ab29e75892832bf", Cores: 2, VCPUs: 2, Memory: 4096 << 20, OnBoot: true,
		Tags:        []string{"tag1", "tag2"},
		Disks:       []Disk{{Key: "rootfs", Storage: "vmstore", Volume: "vmstore:subvol-101-disk-0", Size: 30 << 30}},
		MountPoints: []MountPoint{{Key: "mp0", Source: "/mnt/foo/bar", Path: "/storage", Bind: true}},
		LocalDevices: []LocalDevice{
			{Key: "lxc.cgroup2.devices.allow", Kind: DeviceLXCDev, Value: "c 226:0 rwm"},
			{Key: "lxc.cgroup2.devices.allow", Kind: DeviceLXCDev, Value: "c 226:128 rwm"},
			{Key: "lxc.cgroup2.devices.allow", Kind: DeviceLXCDev, Value: "c 29:0 rwm"},
			{Key: "lxc.mount.entry", Kind: DeviceLXCDev, Value: "/dev/dri dev/dri none bind,optional,create=dir"},
			{Key: "lxc.mount.entry", Kind: DeviceLXCDev, Value: "/dev/fb0 dev/fb0 none bind,optional,create=file"},
		},
	}
	if !reflect.DeepEqual(gc, want) {
		t.Errorf("got\n %+v\nwant %+v", gc, want)
	}
}

func TestParseLXCConfig(t *testing.T) {
	gc := ParseGuestConfig(TypeLXC, kv(
		"memory", "1024", "rootfs", "volume=local-zfs:subvol-200-disk-0,size=8G",
		"mp0", "local-zfs:subvol-200-disk-1,mp=/data,size=16G,backup=1",
		"mp1", "/srv/shared,mp=/shared,shared=1",
		"mp2", "/dev/sdb1,mp=/mnt/disk",
		"unused0", "local-zfs:subvol-200-disk-9",
		"dev0", "/dev/dri/renderD128,gid=104",
	), [][2]string{{"lxc.mount.entry", "/mnt/media mnt/media none bind 0 0"}, {"lxc.apparmor.profile", "unconfined"}})
	if gc.VCPUs != 0 || gc.Memory != 1024<<20 {
		t.Errorf("vcpus %d memory %d", gc.VCPUs, gc.Memory)
	}
	wantDisks := []Disk{
		{Key: "mp0", Storage: "local-zfs", Volume: "local-zfs:subvol-200-disk-1", Size: 16 << 30},
		{Key: "rootfs", Storage: "local-zfs", Volume: "local-zfs:subvol-200-disk-0", Size: 8 << 30},
		{Key: "unused0", Storage: "local-zfs", Volume: "local-zfs:subvol-200-disk-9", Unused: true},
	}
	if !reflect.DeepEqual(gc.Disks, wantDisks) {
		t.Errorf("disks:\n got %+v\nwant %+v", gc.Disks, wantDisks)
	}
	wantMPs := []MountPoint{
		{Key: "mp0", Source: "local-zfs:subvol-200-disk-1", Path: "/data"},
		{Key: "mp1", Source: "/srv/shared", Path: "/shared", Bind: true, Shared: true},
		{Key: "mp2", Source: "/dev/sdb1", Path: "/mnt/disk", Bind: true},
		{Key: "lxc.mount.entry", Source: "/mnt/media", Path: "/mnt/media", Bind: true},
	}
	if !reflect.DeepEqual(gc.MountPoints, wantMPs) {
		t.Errorf("mount points:\n got %+v\nwant %+v", gc.MountPoints, wantMPs)
	}
	wantDevs := []LocalDevice{{Key: "dev0", Kind: DeviceLXCDev, Value: "/dev/dri/renderD128,gid=104"}}
	if !reflect.DeepEqual(gc.LocalDevices, wantDevs) {
		t.Errorf("devices %+v", gc.LocalDevices)
	}
}

func TestQEMUConfigFixture(t *testing.T) {
	gc, err := DecodeGuestConfig(TypeQEMU, fixtureData(t, "qemu_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if gc.Cores != 2 || gc.Sockets != 1 || gc.VCPUs != 2 || gc.Memory != 2048<<20 || !gc.OnBoot ||
		!reflect.DeepEqual(gc.Tags, []string{"prod", "web"}) || len(gc.Disks) != 2 || len(gc.LocalDevices) != 0 {
		t.Errorf("qemu fixture config = %+v", gc)
	}
	if _, err := DecodeGuestConfig(TypeQEMU, []byte(`{"lxc":[1,2]}`)); err == nil {
		t.Error("malformed lxc list accepted")
	}
}

func TestParseSize(t *testing.T) {
	tests := map[string]uint64{
		"": 0, "32G": 32 << 30, "631M": 631 << 20, "1T": 1 << 40, "512K": 512 << 10, "4096": 4096,
		"1.5G": 3 << 29, "x": 0, "G": 0, "-1G": 0, "1e400G": 0, "NaN": 0, "32g": 32 << 30,
	}
	for in, want := range tests {
		if got := ParseSize(in); got != want {
			t.Errorf("ParseSize(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestSplitTags(t *testing.T) {
	tests := map[string][]string{
		"":                      nil,
		"prod;web":              {"prod", "web"},
		"prod, web;;db":         {"prod", "web", "db"},
		" a  b\tc ":             {"a", "b", "c"},
		"dup;x;dup":             {"dup", "x"},
		"Case;case":             {"Case", "case"},
		";;;":                   nil,
		"go-proxmox+cloud-init": {"go-proxmox+cloud-init"},
	}
	for in, want := range tests {
		if got := SplitTags(in); !reflect.DeepEqual(got, want) {
			t.Errorf("SplitTags(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzDecodeGuestConfig(f *testing.F) {
	f.Add(byte(0), []byte(`{"memory":"current=2048","scsi0":"local:vm-1-disk-0,size=1G","tags":"a;b"}`))
	f.Add(byte(1), []byte(`{"memory":4096,"rootfs":"x:y,size=1T","mp0":"/a,mp=/b,shared=1","lxc":[["lxc.mount.entry","/dev/x y"]]}`))
	f.Add(byte(0), []byte(`{"cores":"2","vcpus":3.0,"usb0":"spice","hostpci0":"01:00","ide2":"none,media=cdrom"}`))
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		typ := TypeQEMU
		if kind%2 == 1 {
			typ = TypeLXC
		}
		gc, err := DecodeGuestConfig(typ, data)
		if err != nil {
			return
		}
		for _, d := range gc.Disks {
			if d.Volume == "" || d.Volume == "none" {
				t.Fatalf("empty drive reported as disk: %+v", d)
			}
		}
		for _, mp := range gc.MountPoints {
			if mp.Bind != (len(mp.Source) > 0 && mp.Source[0] == '/') {
				t.Fatalf("bind flag disagrees with source: %+v", mp)
			}
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"32G", "1.5T", "4096", "", "1e9K", "-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Units are case-insensitive, and so is everything else ParseFloat accepts.
		if a, b := ParseSize(s), ParseSize(strings.ToUpper(s)); a != b {
			t.Fatalf("ParseSize(%q) = %d but ParseSize(upper) = %d", s, a, b)
		}
	})
}

func FuzzSplitTags(f *testing.F) {
	for _, s := range []string{"a;b", "a, b", "x;x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		seen := map[string]bool{}
		for _, tag := range SplitTags(s) {
			if tag == "" || seen[tag] {
				t.Fatalf("SplitTags(%q): empty or duplicate %q", s, tag)
			}
			seen[tag] = true
		}
	})
}
