//! GPT (and MBR) disks: a 512-byte MBR ending in `0x55 0xAA` that is not a FAT boot
//! sector (two FATs, media descriptor 0xF8). The `mbr` check: each of the four
//! partition entries (16 bytes from 446) has boot flag 0x00 or 0x80; a protective
//! GPT entry (type 0xEE) starts at CHS 0/2/0 and LBA 1 and is the only entry; at
//! least one entry is in use. The virtual size is the byte count.

use super::region::{le_u16, le_u32};
use super::{Captured, Detected, DiskFormat};

const MBR_LEN: usize = 512;
const SIGNATURE: u16 = 0xAA55;
const PTE_START: usize = 446;
const MEDIA_TYPE_FDISK: u8 = 0xF8;
const PROTECTIVE: u8 = 0xEE;

pub(crate) fn probe(c: &Captured) -> Option<Detected> {
    let mbr = c.prefix(MBR_LEN)?;
    let is_fat = mbr[0x10] == 2 && mbr[0x15] == MEDIA_TYPE_FDISK;
    if is_fat || le_u16(mbr, 510) != Some(SIGNATURE) {
        return None;
    }
    let mut d = Detected::new(DiskFormat::Gpt);
    d.virtual_size = c.total;
    if let Err(message) = check_mbr(mbr) {
        d.fail("mbr", message);
    }
    Some(d)
}

fn check_mbr(mbr: &[u8]) -> Result<(), String> {
    let mut used = Vec::new();
    let mut found_gpt = false;
    for i in 0..4 {
        let pte = &mbr[PTE_START + 16 * i..PTE_START + 16 * (i + 1)];
        if pte[0] != 0x00 && pte[0] != 0x80 {
            return Err(format!("MBR PTE {i} has invalid boot flag"));
        }
        let os_type = pte[4];
        if os_type != 0 {
            used.push(i);
        }
        if os_type == PROTECTIVE {
            found_gpt = true;
            if pte[1..4] != [0x00, 0x02, 0x00] {
                return Err("GPT MBR has invalid start CHS".into());
            }
            if le_u32(pte, 8) != Some(1) {
                return Err("GPT MBR has invalid start LBA".into());
            }
        }
    }
    if found_gpt && used != [0] {
        return Err("GPT MBR defines invalid extra partitions".into());
    }
    if used.is_empty() {
        return Err("GPT MBR has no partitions defined".into());
    }
    Ok(())
}
