"""Tests of the lars package: the wire codec alone, and both backends against real daemons."""
