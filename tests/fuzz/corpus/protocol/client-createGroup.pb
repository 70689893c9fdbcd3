r
Release crewbobcarol