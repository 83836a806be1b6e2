"""Calcium indicators: how one spike's calcium becomes fluorescence, per indicator.

Each indicator has a calcium kernel (instantaneous or double-exponential rise, exponential
decay, normalised so that one spike peaks at kappa = 1), a single-spike amplitude dF/F and
a saturation: either the cubic polynomial of Deneux et al. 2016 (GCaMP6s, today's model,
unchanged) or a Hill binding curve from the indicator's measured Kd, Hill coefficient and
dynamic range over a resting calcium. The numbers and their sources are in
docs/simulator.md ("Indicators"); where a number is a judgement, the docs say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import CalciumAvaeError

#: resting free calcium in neurons, nM (a judgement within the 30-100 nM usually measured,
#: e.g. Maravall et al. 2000); sets where on its Hill curve a protein indicator sits at rest
REST_CALCIUM_NM = 50.0


@dataclass(frozen=True)
class Indicator:
    """One calcium indicator's single-spike response and saturation.

    ``amplitude`` is the peak dF/F of one isolated spike (exactly, by construction).
    ``tau_rise_s`` = 0 means the kernel jumps at the spike (today's GCaMP6s model).
    Saturation: ``polynomial`` = (p2, p3) of F/F0 - 1 = A (k + p2 (k^2 - k) + p3 (k^3 - k)),
    saturated at the cubic's maximum; otherwise a Hill curve with ``kd_nm``, ``hill`` and
    ``dynamic_range`` (F_saturated / F_calcium-free). ``time_to_peak_s`` and
    ``half_decay_s`` are the single-spike targets the kernel was chosen to give (tested).
    """

    name: str
    tau_rise_s: float
    tau_decay_s: float
    amplitude: float
    time_to_peak_s: float
    half_decay_s: float
    citation: str
    f0: float = 42.0
    polynomial: tuple[float, float] | None = None
    kd_nm: float = math.inf
    hill: float = 1.0
    dynamic_range: float = math.inf

    def __post_init__(self) -> None:
        if not (self.tau_decay_s > 0 and 0 <= self.tau_rise_s < self.tau_decay_s):
            raise CalciumAvaeError(
                f"Indicator {self.name}: need 0 <= tau_rise < tau_decay; got "
                f"{self.tau_rise_s}, {self.tau_decay_s}."
            )
        if self.polynomial is None:
            b0 = self._bound(0.0)
            need = b0 + self.amplitude * (1 + (self.dynamic_range - 1) * b0) / (
                self.dynamic_range - 1
            )
            if not need < 1:
                raise CalciumAvaeError(
                    f"Indicator {self.name}: a single-spike dF/F of {self.amplitude} exceeds "
                    "its dynamic range."
                )

    @property
    def rest(self) -> float:
        """Resting calcium in units of Kd."""
        return REST_CALCIUM_NM / self.kd_nm

    def _bound(self, x: np.ndarray | float) -> np.ndarray | float:
        """Fraction of indicator bound at calcium rest + x (units of Kd): Hill equation."""
        c = (self.rest + x) ** self.hill
        return c / (1.0 + c)

    @property
    def spike_calcium(self) -> float:
        """Calcium one spike adds, in units of Kd, so that one spike gives ``amplitude``."""
        if self.polynomial is not None:
            return math.nan
        b0 = float(self._bound(0.0))
        b1 = b0 + self.amplitude * (1 + (self.dynamic_range - 1) * b0) / (self.dynamic_range - 1)
        return (b1 / (1 - b1)) ** (1 / self.hill) - self.rest

    @property
    def max_dff(self) -> float:
        """The largest dF/F any calcium can give (saturation)."""
        if self.polynomial is not None:
            from .fluorescence import polynomial, saturation_kappa

            p2, p3 = self.polynomial
            return float(self.amplitude * polynomial(np.array(saturation_kappa(p2, p3)), p2, p3))
        b0 = float(self._bound(0.0))
        return (self.dynamic_range - 1) * (1 - b0) / (1 + (self.dynamic_range - 1) * b0)

    def kernel_peak(self) -> float:
        """Peak of exp(-t / tau_decay) - exp(-t / tau_rise) (1 without rise)."""
        if self.tau_rise_s == 0:
            return 1.0
        tr, td = self.tau_rise_s, self.tau_decay_s
        tp = tr * td / (td - tr) * math.log(td / tr)
        return math.exp(-tp / td) - math.exp(-tp / tr)

    def shape(self, kappa: np.ndarray) -> np.ndarray:
        """dF/F of calcium kappa (in single-spike peaks) over the single-spike dF/F, so 1
        at one spike's peak; float64, may reuse kappa's memory. The polynomial first
        saturates kappa at the cubic's maximum."""
        if self.polynomial is not None:
            from .fluorescence import polynomial, saturation_kappa

            p2, p3 = self.polynomial
            return polynomial(np.minimum(kappa, saturation_kappa(p2, p3), out=kappa), p2, p3)
        b0 = float(self._bound(0.0))
        b1 = float(self._bound(self.spike_calcium))
        out = np.maximum(kappa, 0.0, out=kappa)
        out *= self.spike_calcium
        out = self._bound(out)
        out -= b0
        out *= 1.0 / (b1 - b0)
        return out

    def dff(self, kappa: np.ndarray) -> np.ndarray:
        """dF/F of calcium kappa (in single-spike peaks); may reuse kappa's memory."""
        out = self.shape(kappa)
        out *= self.amplitude
        return out

    def single_spike(self, t_s: np.ndarray) -> np.ndarray:
        """dF/F of one spike at t = 0, in continuous time (for checks and the docs)."""
        t = np.maximum(np.asarray(t_s, dtype=np.float64), 0.0)
        kappa = np.exp(-t / self.tau_decay_s)
        if self.tau_rise_s > 0:
            kappa -= np.exp(-t / self.tau_rise_s)
            kappa /= self.kernel_peak()
        kappa[np.asarray(t_s) < 0] = 0.0
        return self.dff(kappa)


INDICATORS: dict[str, Indicator] = {
    # Today's model, unchanged (Abante et al. 2025 eq. 2; values of the released script,
    # after Deneux et al. 2016): instantaneous rise, tau 1.82 s, A = 0.113, cubic p2, p3.
    # Its half decay (0.754 s) follows from these numbers.
    "GCaMP6s": Indicator(
        name="GCaMP6s",
        tau_rise_s=0.0,
        tau_decay_s=1.82,
        amplitude=0.113,
        time_to_peak_s=0.0,
        half_decay_s=0.7542,
        citation="Deneux et al. 2016; Abante et al. 2025",
        polynomial=(0.81, -0.056),
    ),
    # Chen et al. 2013: Kd 375 nM, Hill 2.27, dynamic range 51.8 (purified protein); one
    # spike in vivo about 19 % dF/F, peak after about 50 ms, half decay about 140 ms.
    # Kernel time constants fitted to that peak time and half decay.
    "GCaMP6f": Indicator(
        name="GCaMP6f",
        tau_rise_s=0.01995,
        tau_decay_s=0.18716,
        amplitude=0.19,
        time_to_peak_s=0.05,
        half_decay_s=0.14,
        citation="Chen et al. 2013",
        kd_nm=375.0,
        hill=2.27,
        dynamic_range=51.8,
    ),
    # Akerboom et al. 2012: Kd 189 nM, Hill 3.8; half decay 0.57 s after visual responses
    # in vivo (their Fig. 8I). Single-spike dF/F 4 %: Chen et al. 2013 found GCaMP6s'
    # single-spike response more than 6 times GCaMP5K's. Peak time 0.1 s and dynamic
    # range 12 are judgements. Kernel fitted to peak time and half decay.
    "GCaMP5k": Indicator(
        name="GCaMP5k",
        tau_rise_s=0.02804,
        tau_decay_s=0.88685,
        amplitude=0.04,
        time_to_peak_s=0.1,
        half_decay_s=0.57,
        citation="Akerboom et al. 2012; Chen et al. 2013",
        kd_nm=189.0,
        hill=3.8,
        dynamic_range=12.0,
    ),
    # Grewe et al. 2010 (the OGB-1 model of Luetcke et al. 2013): single-spike dF/F 8 %,
    # rise 10 ms, slow decay 0.8 s, kept as the one decay (half decay 0.55 s; their fast
    # 60 ms component is left out: a judgement). Kd 170 nM, Hill 1 (one binding site),
    # dynamic range 14 (manufacturer's figures; judgement for the cell). Kernel fitted to
    # the 30 ms peak time (judgement, from the 10 ms rise) and the half decay.
    "OGB-1": Indicator(
        name="OGB-1",
        tau_rise_s=0.006171,
        tau_decay_s=0.76670,
        amplitude=0.08,
        time_to_peak_s=0.03,
        half_decay_s=0.55,
        citation="Grewe et al. 2010; Luetcke et al. 2013",
        kd_nm=170.0,
        hill=1.0,
        dynamic_range=14.0,
    ),
}


def get_indicator(name: str | Indicator) -> Indicator:
    """The indicator of that name (exact key of INDICATORS); one-line error otherwise."""
    if isinstance(name, Indicator):
        return name
    try:
        return INDICATORS[name]
    except (KeyError, TypeError):
        known = ", ".join(INDICATORS)
        raise CalciumAvaeError(f"Unknown indicator {name!r}; choose one of {known}.") from None
