import CResolv
