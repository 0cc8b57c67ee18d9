//! AP bus + vfio_ap simulator (work in progress, see issue 4).
