"""Fixtures: small NWB files in the suite2p, CaImAn and neuroconv layouts (see nwb_files)."""

from nwb_files import caiman_file, neuroconv_file, suite2p_file

__all__ = ["caiman_file", "neuroconv_file", "suite2p_file"]
