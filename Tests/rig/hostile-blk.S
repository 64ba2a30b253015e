# A hostile virtio-blk driver, as a bare 64-bit kernel for Tests/rig/make-test-kernel (Scripts/test
# assembles it): the disk's virtio-mmio window is the second device's (virtio-rng takes the first,
# momin boot attaches no vsock). It brings the device up by the book (virtio 1.2 §3.1.1: reset,
# ACKNOWLEDGE, DRIVER, VIRTIO_F_VERSION_1, FEATURES_OK, queue 0 of 8 at 0x300000, DRIVER_OK), then
# publishes one descriptor whose buffer lies far outside guest memory and notifies the queue.
# The device must stop the VM with its typed error, not touch the host file or crash.
    .code64
    mov $0xd0001000, %ebx           # the disk's register window (virtio 1.2 §4.2.2)
    movl $0, 0x70(%rbx)             # Status: reset
    movl $1, 0x70(%rbx)             # ACKNOWLEDGE
    movl $3, 0x70(%rbx)             # DRIVER
    movl $1, 0x24(%rbx)             # DriverFeaturesSel 1
    movl $1, 0x20(%rbx)             # VIRTIO_F_VERSION_1 (bit 32)
    movl $0, 0x24(%rbx)
    movl $0, 0x20(%rbx)
    movl $11, 0x70(%rbx)            # FEATURES_OK
    movl $0, 0x30(%rbx)             # QueueSel 0
    movl $8, 0x38(%rbx)             # QueueNum 8
    movl $0x300000, 0x80(%rbx)      # QueueDesc
    movl $0, 0x84(%rbx)
    movl $0x301000, 0x90(%rbx)      # QueueDriver (available ring)
    movl $0, 0x94(%rbx)
    movl $0x302000, 0xa0(%rbx)      # QueueDevice (used ring)
    movl $0, 0xa4(%rbx)
    movl $1, 0x44(%rbx)             # QueueReady
    movl $15, 0x70(%rbx)            # DRIVER_OK
    movabs $0xfff000000000, %rax    # descriptor 0: a buffer at 0xfff0_0000_0000 ...
    mov %rax, 0x300000
    movl $16, 0x300008              # ... 16 bytes long
    movl $0, 0x30000c               # flags 0, next 0
    movl $0, 0x301000               # available ring: flags 0 ...
    movw $1, 0x301002               # ... idx 1 ...
    movw $0, 0x301004               # ... ring[0] = descriptor 0
    movl $0, 0x50(%rbx)             # QueueNotify 0
1:  hlt                             # wait for the end
    jmp 1b
