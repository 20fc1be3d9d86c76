//! A polled driver for the SMSC LAN9118 Ethernet controller (QEMU's mps2 boards) as a smoltcp
//! `Device`: programmed I/O through its FIFOs, no interrupts, no DMA.
//!
//! Register semantics follow the LAN9118 datasheet as QEMU models them: every access is a
//! 32-bit word; packet bytes travel little-endian within FIFO words; an RX status word gives
//! the frame length including its 4-byte CRC.
#![allow(unsafe_code)]

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::EthernetAddress;

/// Where mps2-an385/an386 map the controller.
pub(crate) const MPS2_BASE: usize = 0x4020_0000;

const RX_DATA_FIFO: usize = 0x00;
const TX_DATA_FIFO: usize = 0x20;
const RX_STATUS_FIFO: usize = 0x40;
const ID_REV: usize = 0x50;
const BYTE_TEST: usize = 0x64;
const TX_CFG: usize = 0x70;
const HW_CFG: usize = 0x74;
const RX_FIFO_INF: usize = 0x7C;
const TX_FIFO_INF: usize = 0x80;
const PMT_CTRL: usize = 0x84;
const FREE_RUN: usize = 0x9C;
const MAC_CSR_CMD: usize = 0xA4;
const MAC_CSR_DATA: usize = 0xA8;

const BYTE_TEST_VALUE: u32 = 0x8765_4321;
const HW_CFG_SOFT_RESET: u32 = 1;
const PMT_CTRL_READY: u32 = 1;
const TX_CFG_TX_ON: u32 = 1 << 1;
/// Let the TX status FIFO overrun: nothing here reads it.
const TX_CFG_STATUS_OVERRUN: u32 = 1 << 2;
const MAC_CSR_BUSY: u32 = 1 << 31;
const MAC_CSR_READ: u32 = 1 << 30;
const MAC_CR: u32 = 1;
const MAC_ADDRH: u32 = 2;
const MAC_ADDRL: u32 = 3;
const MAC_CR_RXEN: u32 = 1 << 2;
const MAC_CR_TXEN: u32 = 1 << 3;
/// RX status: error summary.
const RX_STATUS_ERROR: u32 = 1 << 15;
const TX_CMD_A_FIRST: u32 = 1 << 13;
const TX_CMD_A_LAST: u32 = 1 << 12;

/// The largest Ethernet frame handled (without CRC).
const FRAME: usize = 1514;
/// Spins to wait for the controller before declaring it dead.
const SPIN_LIMIT: u32 = 100_000;

/// Why the controller could not be brought up.
#[derive(Debug, Clone, Copy, defmt::Format)]
pub(crate) enum InitError {
    /// BYTE_TEST did not read back its fixed pattern: no LAN9118 at that address.
    NotFound(u32),
    /// The controller did not come out of reset.
    ResetTimeout,
}

/// The controller's register window.
#[derive(Clone, Copy)]
struct Registers(usize);

impl Registers {
    fn read(self, offset: usize) -> u32 {
        // SAFETY: `Lan9118::new`'s caller promised that `self.0` is the controller's register
        // block; `offset` is one of the word-aligned register offsets above.
        unsafe { core::ptr::read_volatile((self.0 + offset) as *const u32) }
    }

    fn write(self, offset: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile((self.0 + offset) as *mut u32, value) }
    }

    fn wait_until(self, done: impl Fn(Registers) -> bool) -> bool {
        (0..SPIN_LIMIT).any(|_| done(self))
    }

    fn mac_read(self, register: u32) -> u32 {
        self.write(MAC_CSR_CMD, MAC_CSR_BUSY | MAC_CSR_READ | register);
        self.wait_until(|r| r.read(MAC_CSR_CMD) & MAC_CSR_BUSY == 0);
        self.read(MAC_CSR_DATA)
    }

    fn mac_write(self, register: u32, value: u32) {
        self.write(MAC_CSR_DATA, value);
        self.write(MAC_CSR_CMD, MAC_CSR_BUSY | register);
        self.wait_until(|r| r.read(MAC_CSR_CMD) & MAC_CSR_BUSY == 0);
    }

    /// Bytes free in the TX data FIFO.
    fn tx_free(self) -> usize {
        (self.read(TX_FIFO_INF) & 0xFFFF) as usize
    }
}

/// The controller plus one frame buffer each way.
pub(crate) struct Lan9118 {
    registers: Registers,
    mac: EthernetAddress,
    rx: [u8; FRAME + 4],
    tx: [u8; FRAME],
    /// Frames dropped because they were malformed or too large.
    pub(crate) rx_dropped: u32,
}

impl Lan9118 {
    /// Resets the controller at `base` and enables its transmitter and receiver, keeping the
    /// MAC address it loaded from its EEPROM.
    ///
    /// # Safety
    /// `base` must be the address of a LAN9118's register block, and nothing else may drive it.
    pub(crate) unsafe fn new(base: usize) -> Result<Self, InitError> {
        let registers = Registers(base);
        let test = registers.read(BYTE_TEST);
        if test != BYTE_TEST_VALUE {
            return Err(InitError::NotFound(test));
        }
        registers.write(HW_CFG, HW_CFG_SOFT_RESET);
        if !registers
            .wait_until(|r| r.read(HW_CFG) & HW_CFG_SOFT_RESET == 0 && r.read(PMT_CTRL) & PMT_CTRL_READY != 0)
        {
            return Err(InitError::ResetTimeout);
        }
        let low = registers.mac_read(MAC_ADDRL).to_le_bytes();
        let high = registers.mac_read(MAC_ADDRH).to_le_bytes();
        let mac = EthernetAddress([low[0], low[1], low[2], low[3], high[0], high[1]]);
        // Exact address match plus broadcast (not promiscuous, the reset default).
        registers.mac_write(MAC_CR, MAC_CR_TXEN | MAC_CR_RXEN);
        registers.write(TX_CFG, TX_CFG_TX_ON | TX_CFG_STATUS_OVERRUN);
        Ok(Lan9118 { registers, mac, rx: [0; FRAME + 4], tx: [0; FRAME], rx_dropped: 0 })
    }

    /// The MAC address the controller loaded.
    pub(crate) fn mac(&self) -> EthernetAddress {
        self.mac
    }

    /// The chip's identification and revision word.
    pub(crate) fn id(&self) -> u32 {
        self.registers.read(ID_REV)
    }

    /// The free-running 25 MHz counter (wraps every 171 s): entropy for the random seed.
    pub(crate) fn free_run(&self) -> u32 {
        self.registers.read(FREE_RUN)
    }

    /// Pops the next received frame into `rx`; its length without CRC.
    fn pop_frame(&mut self) -> Option<usize> {
        while (self.registers.read(RX_FIFO_INF) >> 16) & 0xFF != 0 {
            let status = self.registers.read(RX_STATUS_FIFO);
            let with_crc = ((status >> 16) & 0x3FFF) as usize;
            let words = with_crc.div_ceil(4);
            let keep = status & RX_STATUS_ERROR == 0 && (14 + 4..=self.rx.len()).contains(&with_crc);
            for index in 0..words {
                let word = self.registers.read(RX_DATA_FIFO).to_le_bytes();
                if keep {
                    let at = index * 4;
                    let n = (with_crc - at).min(4);
                    self.rx[at..at + n].copy_from_slice(&word[..n]);
                }
            }
            if keep {
                return Some(with_crc - 4);
            }
            self.rx_dropped = self.rx_dropped.wrapping_add(1);
        }
        None
    }
}

/// A received frame.
pub(crate) struct RxToken<'a>(&'a [u8]);

/// Room to send one frame.
pub(crate) struct TxToken<'a> {
    registers: Registers,
    buffer: &'a mut [u8; FRAME],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let len = len.min(FRAME);
        let result = f(&mut self.buffer[..len]);
        // One segment: command A (first, last, size), command B (packet length), the data.
        self.registers.write(TX_DATA_FIFO, TX_CMD_A_FIRST | TX_CMD_A_LAST | len as u32);
        self.registers.write(TX_DATA_FIFO, len as u32);
        for chunk in self.buffer[..len].chunks(4) {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            self.registers.write(TX_DATA_FIFO, u32::from_le_bytes(word));
        }
        result
    }
}

impl Device for Lan9118 {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        // smoltcp may answer the frame at once, so leave it queued until there is room to.
        if self.registers.tx_free() < FRAME + 8 {
            return None;
        }
        let len = self.pop_frame()?;
        let registers = self.registers;
        Some((RxToken(&self.rx[..len]), TxToken { registers, buffer: &mut self.tx }))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_>> {
        (self.registers.tx_free() >= FRAME + 8)
            .then_some(TxToken { registers: self.registers, buffer: &mut self.tx })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut capabilities = DeviceCapabilities::default();
        capabilities.medium = Medium::Ethernet;
        capabilities.max_transmission_unit = FRAME;
        capabilities.max_burst_size = Some(1);
        capabilities
    }
}
